"""Finding and reading the SWORD modules (pysword), with the one-line message that says how to install them."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable
from pathlib import Path

from genlab.data.bible.markup import clean_osis, clean_spanish
from genlab.data.bible.versification import BOOK_INDEX, Ref
from genlab.data.paths import DataNotFoundError

ENGLISH_MODULE, SPANISH_MODULE = "engWEB2015eb", "spaRV1909eb"
DEBIAN_PACKAGES = ("sword-text-web", "sword-text-sparv")


def sword_paths(modules: str | os.PathLike | None = None) -> list[Path]:
    """Where SWORD modules are looked for: `modules`, else $SWORD_PATH, ~/.sword, the system's folders."""
    if modules is not None:
        return [Path(modules).expanduser()]
    paths = [os.environ.get("SWORD_PATH", ""), "~/.sword", "/usr/share/sword", "/usr/local/share/sword"]
    return [Path(p).expanduser() for p in paths if p]


def missing_modules_message(searched: Iterable[Path]) -> str:
    return (f"the Bible modules {ENGLISH_MODULE} and {SPANISH_MODULE} are not installed (looked in "
            f"{', '.join(map(str, searched))}): install them with `apt-get install {' '.join(DEBIAN_PACKAGES)}`, "
            f"or unzip the SWORD module zips of {ENGLISH_MODULE} and {SPANISH_MODULE} (CrossWire/eBible.org) into "
            "~/.sword so that it holds mods.d/ and modules/, or pass --modules DIR")


def find_modules(modules: str | os.PathLike | None = None) -> Path:
    """The SWORD folder (holding mods.d/) that has both modules; DataNotFoundError says how to install them."""
    searched = sword_paths(modules)
    for path in searched:
        confs = path / "mods.d"
        if confs.is_dir():
            names = {_conf_section(f) for f in confs.glob("*.conf")}
            if {ENGLISH_MODULE, SPANISH_MODULE} <= names:
                return path
    raise DataNotFoundError(missing_modules_message(searched))


def _conf_section(conf: Path) -> str | None:
    try:
        text = conf.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    m = re.search(r"^\[([^\]]+)\]", text, re.MULTILINE)
    return m.group(1) if m else None


def module_version(sword: Path, key: str) -> str:
    for conf in (sword / "mods.d").glob("*.conf"):
        if _conf_section(conf) == key:
            m = re.search(r"^Version=(.*)$", conf.read_text(encoding="utf-8", errors="replace"), re.MULTILINE)
            return m.group(1).strip() if m else "?"
    return "?"


def read_module(sword: Path, key: str) -> dict[Ref, str]:
    """Raw OSIS text of every non-empty verse of the 66 books, by reference, in the module's own numbering."""
    from pysword.modules import SwordModules

    library = SwordModules(str(sword))
    library.parse_modules()
    bible = library.get_bible_from_module(key)
    # pysword decompresses a whole book's block for every verse it reads (minutes for a Bible); keeping the
    # last blocks makes reading a module take seconds.
    bible._decompressed_text = functools.lru_cache(maxsize=4)(bible._decompressed_text)
    verses = {}
    for books in bible.get_structure().get_books().values():
        for book in books:
            if book.osis_name not in BOOK_INDEX:
                continue
            refs = [(book.osis_name, c + 1, v + 1) for c, n in enumerate(book.chapter_lengths) for v in range(n)]
            texts = list(bible.get_iter(books=book.name, clean=False))
            if len(texts) != len(refs):
                raise RuntimeError(f"{key} {book.osis_name}: {len(texts)} verse slots, expected {len(refs)}")
            verses.update((r, t) for r, t in zip(refs, texts, strict=True) if t and t.strip())
    return verses


def load_bibles(modules: str | os.PathLike | None = None):
    """(cleaned English verses, cleaned Spanish verses, {module: version}) from the installed modules."""
    sword = find_modules(modules)
    english = {r: clean_osis(t) for r, t in read_module(sword, ENGLISH_MODULE).items()}
    spanish = clean_spanish({r: clean_osis(t) for r, t in read_module(sword, SPANISH_MODULE).items()})
    versions = {key: module_version(sword, key) for key in (ENGLISH_MODULE, SPANISH_MODULE)}
    return english, spanish, versions
