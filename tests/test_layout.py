"""The layout's rules: pure-torch networks, short files, no import from a lower layer to a higher one, and tools
that answer --help before any heavy import."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "genlab"
MAX_LINES = 400
# Lower layers, and the higher ones they must never import.
HIGHER = ("genlab.models", "genlab.callbacks", "genlab.tools", "genlab.figures", "genlab.lightning_cli",
          "genlab.cli", "genlab.sweep")
LOWER = ["data", "metrics", "nets", "checkpoints.py", "runtime.py", "optim.py", "reporting.py", "errors.py"]


def run_fresh(code: str) -> str:
    """What a fresh interpreter prints running `code` (with this checkout's src first on the path)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    return set(json.loads(run_fresh(f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))")
                          .splitlines()[-1]))


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included), as absolute names."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def files(*parts: str) -> list[Path]:
    found = []
    for part in parts:
        path = PACKAGE / part
        found += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return found


def test_nets_import_torch_only():
    nets = [p.stem for p in files("nets") if p.stem != "__init__"]
    assert {"gpt", "fast_dropout", "vae", "dcgan", "classifier"} <= set(nets)
    loaded = loaded_after("\n".join(f"import genlab.nets.{name}" for name in nets))
    heavy = {m for m in loaded if m.split(".")[0] in ("pytorch_lightning", "lightning", "wandb", "matplotlib")}
    assert not heavy, f"genlab.nets imported {sorted(heavy)[:5]}"
    outside = {m for m in loaded if m.startswith("genlab.") and not m.startswith(("genlab.nets", "genlab.runtime"))}
    assert not outside, f"genlab.nets imported {sorted(outside)}"


def test_no_file_over_the_line_limit():
    long = {str(p.relative_to(SRC)): n for p in files(".") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines: {long}"


@pytest.mark.parametrize("part", LOWER)
def test_lower_layers_never_import_higher_ones(part):
    for path in files(part):
        upward = {name for name in imports_of(path) if name.startswith(HIGHER)}
        assert not upward, f"{path.relative_to(SRC)} imports {sorted(upward)}"


def test_the_import_check_sees_nested_imports(tmp_path):
    source = tmp_path / "example.py"
    source.write_text("def f():\n    from genlab.models.base import GenlabModule\n")
    assert "genlab.models.base" in imports_of(source)


TOOLS = ["generate", "sample", "evaluate", "vae-figures", "precision", "export-classifier", "attention", "translate"]
HEAVY = ("torch", "pytorch_lightning", "lightning")


@pytest.fixture(scope="module")
def tools_probe() -> dict:
    """One fresh interpreter answers every tool's --help in turn, then runs `genlab precision`: what each step
    printed and which heavy modules were loaded after it (so far, so a tool that imports torch fails itself and
    every tool after it)."""
    code = f"""
import contextlib, io, json, sys
from genlab.cli import main

def heavy():
    return sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})

out = {{}}
for tool in {TOOLS!r}:
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        try:
            main([tool, "--help"])
        except SystemExit:
            pass
    out[tool] = {{"printed": printed.getvalue(), "heavy": heavy()}}
with contextlib.redirect_stdout(io.StringIO()):
    out["precision run"] = {{"code": main(["precision"]), "heavy": heavy()}}
print(json.dumps(out))
"""
    return json.loads(run_fresh(code).splitlines()[-1])


@pytest.mark.parametrize("tool", TOOLS)
def test_tools_parse_their_arguments_before_importing_torch(tools_probe, tool):
    assert "usage:" in tools_probe[tool]["printed"], tools_probe[tool]["printed"][-500:]
    assert not tools_probe[tool]["heavy"], f"after `genlab {tool} --help`: {tools_probe[tool]['heavy'][:5]}"


def test_translate_help_names_its_options(tools_probe):
    assert "--beam" in tools_probe["translate"]["printed"]


def test_precision_never_imports_lightning(tools_probe):
    run = tools_probe["precision run"]
    assert run["code"] == 0
    assert "torch" in run["heavy"]  # it did the arithmetic ...
    assert not any(m.split(".")[0] in ("pytorch_lightning", "lightning") for m in run["heavy"])  # ... without Lightning
