"""The documentation's links: every relative link and image in README.md, reports/*/README.md and docs/*.md points
at a file that exists, and the front page stays a front page (at most 300 lines)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FRONT_PAGE_MAX_LINES = 300

# Fenced code blocks and inline code hold commands, not links.
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target), with an optional "title"; <img src="..."> and <a href="...">.
MD_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"<(?:img|a)\b[^>]*?\b(?:src|href)\s*=\s*[\"']([^\"']+)[\"']", re.I)


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(ROOT.glob("reports/*/README.md")), *sorted(ROOT.glob("docs/*.md"))]


def link_targets(text: str) -> list[str]:
    """The link and image targets of a Markdown text, outside code."""
    text = INLINE_CODE.sub("", FENCE.sub("", text))
    return MD_LINK.findall(text) + HTML_LINK.findall(text)


def broken_links(page: Path) -> list[str]:
    """The relative targets of `page` that name no existing file or folder (anchors and URLs are not checked)."""
    broken = []
    for target in link_targets(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue  # http:, https:, mailto:, or an anchor in the same page
        path = target.split("#", 1)[0].split("?", 1)[0]
        if not (page.parent / path).exists():
            broken.append(target)
    return broken


def test_the_checker_finds_links_and_ignores_code(tmp_path):
    (tmp_path / "here.png").write_bytes(b"")
    page = tmp_path / "page.md"
    page.write_text(
        "![ok](here.png) [gone](missing.md#part) <img src=\"nope.png\" width=\"9\"> [web](https://example.org)\n"
        "[anchor](#top) `[in code](code.md)`\n```\n[in a block](block.md)\n```\n", encoding="utf-8")
    assert link_targets(page.read_text()) == ["here.png", "missing.md#part", "https://example.org", "#top", "nope.png"]
    assert broken_links(page) == ["missing.md#part", "nope.png"]


def test_the_pages_exist():
    names = {p.relative_to(ROOT).as_posix() for p in pages()}
    assert {"README.md", "reports/vae/README.md", "reports/dcgan/README.md", "reports/lm/README.md",
            "reports/seq2seq/README.md", "reports/evaluator/README.md",
            "reports/discriminator_strength/README.md"} <= names
    assert any(name.startswith("docs/") for name in names)


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_and_image_exists(page):
    assert link_targets(page.read_text(encoding="utf-8")), f"{page} links nowhere"
    assert broken_links(page) == [], f"{page.relative_to(ROOT)}: links to missing files"


def test_the_front_page_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= FRONT_PAGE_MAX_LINES, f"README.md has {lines} lines; move the detail to reports/ or docs/"


def course_commands(readme: str) -> list[str]:
    """The commands of README's "The course in commands" table (its second column's inline code)."""
    section = readme.split("## The course in commands", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    return [code for row in rows[1:] for code in re.findall(r"`([^`\n]+)`", row[2])]


def test_the_course_commands_write_to_runs_never_to_the_shipped_reports():
    commands = course_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert any("genlab vae-figures" in c for c in commands) and len(commands) >= 6
    writing = [c for c in commands if re.search(r"--(out|show-distribution|root)\b", c)]
    assert writing, "the course table names where its commands write"
    overwriting = [c for c in writing if re.search(r"--(out|show-distribution|root)[ =]+reports/", c)]
    assert not overwriting, f"a learner following the course would overwrite shipped figures: {overwriting}"
    # a script whose default output is reports/ must be given another one in the course table
    for script in ("gan_gradient_study.py", "positions_study.py"):
        assert all("--out runs/" in c for c in commands if script in c), script
