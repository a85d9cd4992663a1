"""`genlab precision`: the printed limits are torch.finfo's and the demonstrated outcomes really happen."""

from __future__ import annotations

import pytest
import torch

from genlab.cli import main
from genlab.float_formats import DTYPES, lesson
from genlab.runtime import flush_denormals, ieee_subnormals


def test_printed_table_matches_finfo(capsys):
    assert main(["precision"]) == 0
    out = capsys.readouterr().out
    table = out.split("\n\n")[1].splitlines()[1:]  # the block after the title, less its header
    rows = {line.split()[0]: line.split() for line in table}
    assert set(rows) == set(DTYPES)
    for name, dtype in DTYPES.items():
        info = torch.finfo(dtype)
        bits, largest, normal, subnormal, eps = rows[name][1:6]
        assert int(bits) == info.bits
        assert float(largest) == float(f"{info.max:.5g}")
        assert float(normal) == float(f"{info.smallest_normal:.5g}")
        assert float(eps) == float(f"{info.eps:.5g}")
        # the printed smallest subnormal is representable and half of it rounds to zero (IEEE arithmetic, even for
        # parsing it: other tests in this process build genlab modules, which turn on flush-to-zero)
        with ieee_subnormals():
            smallest = float(subnormal)
            assert torch.tensor(smallest, dtype=torch.float64).to(dtype).item() > 0
            assert (torch.tensor(smallest, dtype=torch.float64).to(dtype) / 2).item() == 0.0 or name == "float64"
    assert "65520 -> inf" in out


def test_formats_are_named_as_the_lesson_names_them(capsys):
    assert main(["precision"]) == 0
    out = capsys.readouterr().out
    table = out.split("\n\n")[1].splitlines()[1:]
    called = {line.split()[0]: line.split()[-1] for line in table}
    assert called == {"float16": "half", "bfloat16": "bfloat16", "float32": "single", "float64": "double"}
    assert "float16 (half)" in out and "float32 (single)" in out and "float64 (double)" in out


def test_demonstrated_outcomes():
    r = lesson()
    assert r["tiny_update"]["float16"] == 1.0  # lr 1e-3 * grad 1e-5 is lost in float16 ...
    assert r["tiny_update"]["float64"] < 1.0
    assert r["small_update"]["float16"] == 1.0 and r["small_update"]["float32"] < 1.0  # ... 1e-7 survives in float32
    assert r["accumulated"]["float16"] == 1.0 and abs(r["accumulated"]["float32"] - 0.9) < 1e-4
    plain, scaled, unscaled = r["underflow"]
    assert plain == 0.0 and scaled > 0 and abs(unscaled - 1e-8) / 1e-8 < 1e-3  # loss scaling rescues it
    assert r["overflow"]["65504"] == 65504.0 and r["overflow"]["65504 * 2"] == float("inf")
    assert r["range"]["float16"] == float("inf") and abs(r["range"]["bfloat16"] - 1e38) / 1e38 < 0.01
    assert abs(r["digits"]["bfloat16"] - 3.14159265) > 5e-4 > 1e-6 > abs(r["digits"]["float32"] - 3.14159265)


def test_lesson_is_ieee_even_after_flush_to_zero():
    """genlab flushes subnormals to zero for speed; the precision lesson, which is about them, must not see that."""
    if not flush_denormals():
        pytest.skip("this CPU has no flush-to-zero mode: nothing for the lesson to undo")
    before = torch.tensor(1e-39, dtype=torch.float32) * 1.0
    r = lesson()
    assert before.item() == 0.0  # flush-to-zero was on ...
    assert r["limits"][2].smallest_subnormal > 0 and r["underflow"][1] > 0  # ... the lesson ran without it ...
    assert (torch.tensor(1e-39, dtype=torch.float32) * 1.0).item() == 0.0  # ... and it is on again afterwards
