"""English -> Spanish verse pairs from two public-domain Bibles, split by book: `genlab data bible-eng-spa`.

Source: Debian's packages `sword-text-web` (World English Bible, SWORD module engWEB2015eb, versification NRSVA)
and `sword-text-sparv` (Reina-Valera 1909, module spaRV1909eb, versification KJV), read with `pysword`. They hold
the 66 books of the Protestant canon in both languages (the English module's deuterocanonical books are left out).

Text: the modules' OSIS markup is stripped (`clean_osis`): footnotes and cross-references go with their text,
section headings and speaker labels go, a psalm's canonical title stays (both Bibles print it as the start of
verse 1), word tags keep their words; punctuation stays where the text puts it and whitespace is normalised.
Two print conventions of the Spanish module are undone: the capitals of a chapter's first word ("EN el
principio" -> "En el principio") and the Pauline subscriptions after the last "Amén" of Romans to Hebrews
("Fué escrita de Corinto ...", which the English text does not have).

Alignment: by reference, through `VERSIFICATION_TABLE`. The two modules number verses alike almost everywhere
(NRSVA and KJV differ only in 3 John 1:15 and Revelation 12:18, where neither module has text), but the Spanish
module keeps the Reina-Valera's own numbering in a few chapters -- the Hebrew numbering of Numbers 13 and 30,
1 Samuel 24, 1 Kings 22, Hosea 12 and Jonah 2 (Jonah 1:17 in English is 2:1 in Spanish), a shifted Job 38-40,
verses split elsewhere in 1 Chronicles 21 and 2 Chronicles 33 -- with the overflow packed into the chapter's last
verse slot, so pairing by label would pair the wrong verses there. Each table entry was checked by reading both
texts. Pairs that are still not translations of each other are dropped and counted by reason (`align`): a side
without text (a verse one edition omits, such as Luke 17:36 in the WEB), a side without letters, or a length
ratio outside [MIN_RATIO, MAX_RATIO] (textual variants such as 1 John 5:7).

Split by book, so that no held-out verse shares its book (names, phrasing, chapter context) with training:
    validation: Joshua, Lamentations, Jonah, 1 Corinthians, Galatians
    test:       Ruth, Esther, Ecclesiastes, Daniel, Amos, Romans, James
about 5 % of the pairs each, from both testaments, narrative, poetry, prophecy and letters. No Gospel, and none of
Samuel/Kings/Chronicles or Ezra/Nehemiah, is held out: they retell one another, so a held-out one would share
whole sentences with training.

Output: DIR/{train,val,test}.tsv with lines `english<TAB>spanish<TAB>reference` (the reference in English
numbering; genlab's seq2seq data module reads the first two columns), plus stats.json and README.md. The output
depends only on the two modules, so running the command again rewrites the same bytes: it overwrites freely.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from genlab.data.bible.markup import clean_osis, clean_spanish
from genlab.data.bible.sword import (
    DEBIAN_PACKAGES,
    ENGLISH_MODULE,
    SPANISH_MODULE,
    find_modules,
    load_bibles,
    missing_modules_message,
    read_module,
)
from genlab.data.bible.versification import (
    BOOK_INDEX,
    BOOKS,
    NEW_TESTAMENT,
    VERSIFICATION_TABLE,
    Ref,
    format_ref,
    ref_key,
    versification_units,
)
from genlab.data.paths import data_root

DATASET_DIR = "bible_eng_spa"
SPLITS = ("train", "val", "test")
HELD_OUT = {
    "val": ("Josh", "Lam", "Jonah", "1Cor", "Gal"),
    "test": ("Ruth", "Esth", "Eccl", "Dan", "Amos", "Rom", "Jas"),
}
# Spanish/English length ratio (characters) outside which a pair is not a translation of each other: chosen by
# reading the pairs near the bounds (inside: terse but faithful Spanish; outside: textual variants such as 1 John 5:7).
MIN_RATIO, MAX_RATIO = 0.5, 2.0
# Below this many characters on both sides the ratio says little ("Jesus wept." / "Y lloró Jesús.").
RATIO_MIN_CHARS = 40


@dataclass(frozen=True)
class Pair:
    ref: str  # English numbering: "Jonah 1:17", "Jonah 2:9-10"
    book: str
    english: str
    spanish: str


def align(english: Mapping[Ref, str], spanish: Mapping[Ref, str], table: bool = True):
    """(pairs in canonical order, Counter of dropped units by reason) for cleaned verses of both Bibles.

    `table=False` pairs by verse label alone (to show what the table corrects). Books missing from either side
    (the English deuterocanon) are ignored, not counted."""
    english = {r: t for r, t in english.items() if t}  # a slot that held only markup is no verse
    spanish = {r: t for r, t in spanish.items() if t}
    books = {r[0] for r in english} & {r[0] for r in spanish} & BOOK_INDEX.keys()
    units: list[tuple[tuple[Ref, ...], tuple[Ref, ...]]] = []
    claimed_e: set[Ref] = set()
    claimed_s: set[Ref] = set()
    for e_refs, s_refs in versification_units() if table else ():
        if e_refs[0][0] in books:
            units.append((e_refs, s_refs))
            claimed_e.update(e_refs)
            claimed_s.update(s_refs)
    labels = {r for r in (*english, *spanish) if r[0] in books}
    for ref in labels:
        if ref not in claimed_e and ref not in claimed_s:
            units.append(((ref,), (ref,)))
        elif ref not in claimed_e and ref in english:
            units.append(((ref,), ()))  # a verse the table leaves without a partner
        elif ref not in claimed_s and ref in spanish:
            units.append(((), (ref,)))
    pairs, dropped = [], Counter()
    for e_refs, s_refs in sorted(units, key=lambda u: ref_key((u[0] or u[1])[0])):
        e = " ".join(t for t in (english.get(r, "") for r in e_refs) if t)
        s = " ".join(t for t in (spanish.get(r, "") for r in s_refs) if t)
        reason = _not_a_translation(e, s)
        if reason:
            dropped[reason] += 1
        else:
            pairs.append(Pair(format_ref(e_refs), e_refs[0][0], e, s))
    return pairs, dropped


def _not_a_translation(english: str, spanish: str) -> str | None:
    if not spanish:
        return "no Spanish text"
    if not english:
        return "no English text"
    if not any(c.isalpha() for c in english) or not any(c.isalpha() for c in spanish):
        return "a side without words"
    if max(len(english), len(spanish)) >= RATIO_MIN_CHARS and \
            not MIN_RATIO <= len(spanish) / len(english) <= MAX_RATIO:
        return f"length ratio outside [{MIN_RATIO}, {MAX_RATIO}]"
    return None


def split_of(book: str) -> str:
    for split, books in HELD_OUT.items():
        if book in books:
            return split
    return "train"



def default_out_dir() -> Path:
    return data_root() / DATASET_DIR


def write_corpus(pairs: list[Pair], dropped: Counter, out: Path, versions: Mapping[str, str]) -> dict:
    """DIR/{train,val,test}.tsv, stats.json and README.md; returns the stats."""
    out.mkdir(parents=True, exist_ok=True)
    by_split: dict[str, list[Pair]] = {s: [] for s in SPLITS}
    for p in pairs:
        by_split[split_of(p.book)].append(p)
    stats = {
        "source": {ENGLISH_MODULE: f"World English Bible, version {versions.get(ENGLISH_MODULE, '?')}",
                   SPANISH_MODULE: f"Reina-Valera 1909, version {versions.get(SPANISH_MODULE, '?')}"},
        "pairs": {s: len(ps) for s, ps in by_split.items()},
        "english_chars": {s: sum(len(p.english) for p in ps) for s, ps in by_split.items()},
        "spanish_chars": {s: sum(len(p.spanish) for p in ps) for s, ps in by_split.items()},
        "books": {s: sorted({p.book for p in ps}, key=BOOK_INDEX.get) for s, ps in by_split.items()},
        "dropped": dict(sorted(dropped.items())),
        "dropped_total": sum(dropped.values()),
        "versification_table_pairs": len(versification_units()),
    }
    for split, ps in by_split.items():
        lines = (f"{p.english}\t{p.spanish}\t{p.ref}\n" for p in ps)
        (out / f"{split}.tsv").write_text("".join(lines), encoding="utf-8", newline="\n")
    (out / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "README.md").write_text(_readme(stats), encoding="utf-8")
    return stats


def _readme(stats: dict) -> str:
    rows = "\n".join(f"| {s} | {stats['pairs'][s]} | {stats['english_chars'][s]} | {stats['spanish_chars'][s]} | "
                     f"{', '.join(stats['books'][s]) if s != 'train' else 'the other 54 books'} |" for s in SPLITS)
    drops = "\n".join(f"- {reason}: {n}" for reason, n in stats["dropped"].items())
    return f"""# bible_eng_spa: English -> Spanish verse pairs

Made by `genlab data bible-eng-spa` from the public-domain World English Bible ({ENGLISH_MODULE}) and
Reina-Valera 1909 ({SPANISH_MODULE}) SWORD modules (Debian: {', '.join(DEBIAN_PACKAGES)}).
Lines: `english<TAB>spanish<TAB>reference`; the split is by book (genlab.data.bible says why and how).

| split | pairs | English chars | Spanish chars | books |
| --- | ---: | ---: | ---: | --- |
{rows}

Dropped verse units (not translations of each other), {stats['dropped_total']} in all:
{drops}
"""


def prepare(out: str | os.PathLike | None = None, modules: str | os.PathLike | None = None) -> dict:
    """Read both modules, align, split by book and write the corpus; returns the stats (with `out`)."""
    english, spanish, versions = load_bibles(modules)
    pairs, dropped = align(english, spanish)
    out = Path(out) if out is not None else default_out_dir()
    stats = write_corpus(pairs, dropped, out, versions)
    return {**stats, "out": str(out)}


__all__ = ["BOOKS", "BOOK_INDEX", "DEBIAN_PACKAGES", "ENGLISH_MODULE", "NEW_TESTAMENT", "SPANISH_MODULE", "SPLITS",
           "VERSIFICATION_TABLE", "Ref", "format_ref", "missing_modules_message", "ref_key", "write_corpus",
           "HELD_OUT", "Pair", "align", "clean_osis", "clean_spanish", "find_modules", "load_bibles", "prepare",
           "read_module", "split_of", "versification_units"]
