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

import functools
import html
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from genlab.data.paths import DataNotFoundError, data_root

ENGLISH_MODULE, SPANISH_MODULE = "engWEB2015eb", "spaRV1909eb"
DEBIAN_PACKAGES = ("sword-text-web", "sword-text-sparv")
DATASET_DIR = "bible_eng_spa"
SPLITS = ("train", "val", "test")

# The 66 books in canonical order, by OSIS id (the names pysword and the modules use).
BOOKS = (
    "Gen Exod Lev Num Deut Josh Judg Ruth 1Sam 2Sam 1Kgs 2Kgs 1Chr 2Chr Ezra Neh Esth Job Ps Prov Eccl Song Isa "
    "Jer Lam Ezek Dan Hos Joel Amos Obad Jonah Mic Nah Hab Zeph Hag Zech Mal "
    "Matt Mark Luke John Acts Rom 1Cor 2Cor Gal Eph Phil Col 1Thess 2Thess 1Tim 2Tim Titus Phlm Heb Jas 1Pet 2Pet "
    "1John 2John 3John Jude Rev"
).split()
BOOK_INDEX = {b: i for i, b in enumerate(BOOKS)}
NEW_TESTAMENT = frozenset(BOOKS[BOOKS.index("Matt"):])
HELD_OUT = {
    "val": ("Josh", "Lam", "Jonah", "1Cor", "Gal"),
    "test": ("Ruth", "Esth", "Eccl", "Dan", "Amos", "Rom", "Jas"),
}
# Spanish/English length ratio (characters) outside which a pair is not a translation: the aligned verses have a
# median ratio of 0.96 and 99.9 % lie inside these bounds; the pairs outside them are textual variants.
MIN_RATIO, MAX_RATIO = 0.5, 2.0
# Below this many characters on both sides the ratio says little ("Jesus wept." / "Y lloró Jesús.").
RATIO_MIN_CHARS = 40

Ref = tuple[str, int, int]  # (OSIS book, chapter, verse)

# English (WEB) verses = Spanish (RV1909 module) verses. `A = B`: the i-th verse of A pairs with the i-th verse
# of B (same count); `A ~ B`: all of A, joined, pairs with all of B, joined (one pair). A side is a comma-separated
# list of `Book C:V` or `Book C:V-W`. Every entry was checked by reading both texts; a verse not named here pairs
# with the verse of the same label.
VERSIFICATION_TABLE = """
Num 12:16 ~ Num 13:1                    # the Spanish module follows the Hebrew numbering in Numbers 13 ...
Num 13:1-31 = Num 13:2-32
Num 13:32-33 ~ Num 13:33                # ... its last slot holds Hebrew 13:33-34
Num 29:40 ~ Num 30:1                    # Hebrew numbering in Numbers 30
Num 30:1-14 = Num 30:2-15
Num 30:15-16 ~ Num 30:16
Judg 14:18 ~ Judg 14:18-19              # the RV1909 splits 14:18 and joins 14:19-20
Judg 14:19-20 ~ Judg 14:20
1Sam 10:25-26 ~ 1Sam 10:25-26           # "Samuel sent all the people away" opens the Spanish 10:26
1Sam 15:24-25 ~ 1Sam 15:24-25           # "please pardon my sin" ends the Spanish 15:24
1Sam 17:55-56 ~ 1Sam 17:55-56           # Abner's answer opens the Spanish 17:56
1Sam 23:29 ~ 1Sam 24:1                  # Hebrew numbering in 1 Samuel 24
1Sam 24:1-20 = 1Sam 24:2-21
1Sam 24:21-22 ~ 1Sam 24:22
2Sam 2:31-32 ~ 2Sam 2:31-32             # Asahel's burial ends the Spanish 2:31
2Sam 20:25-26 ~ 2Sam 20:25              # the Spanish 20:25 holds 20:26
1Kgs 16:29-30 ~ 1Kgs 16:29-30           # Ahab's "twenty-two years" opens the Spanish 16:30
1Kgs 18:33-34 ~ 1Kgs 18:33-34           # "Fill four jars" opens the Spanish 18:34
1Kgs 22:43 ~ 1Kgs 22:43-44              # Hebrew numbering in 1 Kings 22
1Kgs 22:44-51 = 1Kgs 22:45-52
1Kgs 22:52-53 ~ 1Kgs 22:53
1Chr 1:30-32 ~ 1Chr 1:30-32             # the sons of Ishmael and of Keturah split differently
1Chr 2:34-35 ~ 1Chr 2:34-35
1Chr 21:15 ~ 1Chr 21:15-16              # the RV1909 splits 21:15 ...
1Chr 21:16-28 = 1Chr 21:17-29
1Chr 21:29-30 ~ 1Chr 21:30              # ... and joins 21:29-30
2Chr 33:10-11 ~ 2Chr 33:10              # the RV1909 joins 33:10-11
2Chr 33:12-25 = 2Chr 33:11-24
Job 35:15-16 ~ Job 35:15
Job 38:39-41 = Job 39:1-3               # the RV1909 starts Job 39 three verses early ...
Job 39:1-26 = Job 39:4-29
Job 39:27-30, Job 40:1-5 ~ Job 39:30    # ... and ends it five verses late
Job 40:6-24 = Job 40:1-19
Ps 137:3-4 ~ Ps 137:3-4                 # "Sing us one of the songs of Zion" ends the Spanish 137:4
Jer 51:21-22 ~ Jer 51:21-22             # "the chariot and him who rides" ends the Spanish 51:21
Hos 11:12 ~ Hos 12:1                    # Hebrew numbering in Hosea 12
Hos 12:1-12 = Hos 12:2-13
Hos 12:13-14 ~ Hos 12:14
Jonah 1:17 ~ Jonah 2:1                  # Hebrew numbering in Jonah 2: the fish is Jonah 2:1 in Spanish
Jonah 2:1-8 = Jonah 2:2-9
Jonah 2:9-10 ~ Jonah 2:10
Matt 28:8-9 ~ Matt 28:8-9               # "As they went to tell his disciples" ends the Spanish 28:8
Luke 7:18-19 ~ Luke 7:18-19             # "calling two of his disciples" ends the Spanish 7:18
Acts 11:25-26 ~ Acts 11:25-26           # "he brought him to Antioch" ends the Spanish 11:25
Acts 19:40-41 ~ Acts 19:40
Rom 14:23 ~ Rom 14:23, Rom 16:25-27     # the WEB puts the doxology after 14:23
2Cor 13:12-13 ~ 2Cor 13:12
2Cor 13:14 ~ 2Cor 13:13
"""

# The Spanish module adds an ancient subscription ("Fué escrita de Corinto á los Romanos ...") after the last
# "Amén." of each of these books.
SUBSCRIBED_BOOKS = ("Rom", "1Cor", "2Cor", "Gal", "Eph", "Phil", "Col", "1Thess", "2Thess", "1Tim", "2Tim",
                    "Titus", "Phlm", "Heb")


# ---------------------------------------------------------------------------------------------------------------
# Markup

# Elements dropped with everything inside them (footnotes, cross-references, headings, speaker labels).
_DROPPED = frozenset({"note", "title", "speaker", "catchword", "rdg", "figure", "index"})
# Elements that separate words although no space is written next to them (poetry lines, paragraphs...).
# The Spanish module also writes the words a translator added (<transChange>) without spaces around them.
_BLOCKS = frozenset({"l", "lg", "lb", "p", "div", "chapter", "item", "list", "milestone", "title", "head",
                     "transchange"})
_GAP = "\x00"
_TAG = re.compile(r"<(/?)([A-Za-z][\w:.-]*)([^<>]*?)(/?)>")
_WORD_TAG = re.compile(r"</?w\b[^<>]*>")
_ATTR = re.compile(r'([\w:.-]+)\s*=\s*"([^"]*)"')
_SPACE_AND_GAP = re.compile(r"\s*\x00[\s\x00]*")
_WORD_START = re.compile(r"[\w“‘\"'(¿¡\[]")
_OPENERS, _CLOSERS = "“‘\"'(¿¡[—", ",.;:!?)]”’»"


def clean_osis(raw: str) -> str:
    """The words of one verse of OSIS text (see the module docstring for what is kept).

    A small tokenizer rather than an XML parser: the modules' verses are fragments, and some are not
    well-formed on their own (a list opened in one verse closes in another), which xml.etree refuses; and
    html.parser reads <title> as raw text in recent Pythons. pysword's own cleaner drops the canonical psalm
    titles the Spanish text has, and glues the words on either side of a removed footnote ("Godcreated")."""
    raw = _WORD_TAG.sub("", raw)  # most tags are <w>: dropping them first makes reading a Bible 4x faster
    out: list[str] = []
    skipping, depth, pos = "", 0, 0
    for m in _TAG.finditer(raw):
        if not skipping:
            out.append(raw[pos:m.start()])
        pos = m.end()
        closing, name, attrs, empty = m.group(1), m.group(2).lower(), m.group(3), m.group(4)
        if skipping:  # inside a dropped element: wait for its end, counting nested ones of the same name
            if name == skipping and not empty:
                depth += -1 if closing else 1
                if depth == 0:
                    skipping = ""
                    out.append(_GAP)
            continue
        if name not in _DROPPED and name not in _BLOCKS:
            continue  # a tag around words (<q>, <seg>...): its words stay
        attr = dict(_ATTR.findall(attrs)) if name in ("div", "title") else {}
        if name == "div" and (attr.get("type") == "book" and "eID" in attr or attr.get("type") == "glossary"):
            break  # the book has ended: what follows in this slot (the WEB's glossary) is not verse text
        if (name in _DROPPED and not closing and not empty
                and not (name == "title" and attr.get("canonical") == "true")):
            skipping, depth = name, 1
            continue
        if name in _BLOCKS:
            out.append(_GAP)
    else:
        if not skipping:
            out.append(raw[pos:])
    return _join_words(html.unescape("".join(out)))


def _join_words(text: str) -> str:
    def space(m: re.Match) -> str:
        run, start, end = m.group(0), m.start(), m.end()
        before = text[start - 1] if start else " "
        after = text[end] if end < len(text) else " "
        if _GAP in run and after in _CLOSERS:  # "coins<note/> ?" -> "coins?"
            return ""
        if any(c != _GAP for c in run):
            return " "
        # only markup here: a space when it stood between two words ("God<note/>created", "Christ,<note/>the",
        # "ejército<transChange>se llamaba"), none inside punctuation ("heavens<note/>.", "¿<w>Quién")
        return " " if not before.isspace() and before not in _OPENERS and _WORD_START.match(after) else ""

    return " ".join(_SPACE_AND_GAP.sub(space, text).split())


def _unshout(text: str) -> str:
    """The first all-capital word of a chapter's first verse, written as a word ("Y JACOB" -> "Y Jacob")."""
    for m in re.finditer(r"[^\W\d_]{2,}", text):
        word = m.group(0)
        if word.isupper() and word != "ALEPH":  # Psalm 119's Hebrew letters are capitals in both Bibles
            return text[:m.start()] + word.capitalize() + text[m.end():]
    return text


def clean_spanish(verses: Mapping[Ref, str]) -> dict[Ref, str]:
    """Undo the Spanish module's print conventions (see the module docstring) on cleaned verses."""
    out = dict(verses)
    for ref, text in verses.items():
        if ref[2] == 1:
            out[ref] = _unshout(text)
    for book in SUBSCRIBED_BOOKS:
        last = max((r for r, t in out.items() if r[0] == book and t), default=None)
        if last is not None and "Amén." in out[last]:
            out[last] = out[last][: out[last].rindex("Amén.") + len("Amén.")]
    return out


# ---------------------------------------------------------------------------------------------------------------
# Alignment


def format_ref(refs: Iterable[Ref]) -> str:
    """`Jonah 1:17`, `Jonah 2:9-10`, `Job 39:27-40:5`."""
    refs = sorted(refs, key=ref_key)
    (book, c1, v1), (_, c2, v2) = refs[0], refs[-1]
    if (c1, v1) == (c2, v2):
        return f"{book} {c1}:{v1}"
    return f"{book} {c1}:{v1}-{v2}" if c1 == c2 else f"{book} {c1}:{v1}-{c2}:{v2}"


def ref_key(ref: Ref) -> tuple[int, int, int]:
    return BOOK_INDEX[ref[0]], ref[1], ref[2]


def _parse_side(text: str) -> list[Ref]:
    refs = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\w+) (\d+):(\d+)(?:-(\d+))?\s*", part)
        if not m or m.group(1) not in BOOK_INDEX:
            raise ValueError(f"bad reference {part.strip()!r} in the versification table")
        book, chapter, first = m.group(1), int(m.group(2)), int(m.group(3))
        last = int(m.group(4) or first)
        refs += [(book, chapter, v) for v in range(first, last + 1)]
    return refs


@functools.cache
def versification_units() -> tuple[tuple[tuple[Ref, ...], tuple[Ref, ...]], ...]:
    """The table as (English verses, Spanish verses) units, each unit one pair."""
    units = []
    for line in VERSIFICATION_TABLE.strip().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        op = "=" if " = " in line else "~"
        english, spanish = (_parse_side(s) for s in line.split(f" {op} "))
        if op == "=":
            if len(english) != len(spanish):
                raise ValueError(f"{line!r}: `=` needs as many verses on both sides")
            units += [((e,), (s,)) for e, s in zip(english, spanish, strict=True)]
        else:
            units.append((tuple(english), tuple(spanish)))
    return tuple(units)


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


# ---------------------------------------------------------------------------------------------------------------
# Reading the modules


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


# ---------------------------------------------------------------------------------------------------------------
# Writing the corpus


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


__all__ = ["HELD_OUT", "Pair", "align", "clean_osis", "clean_spanish", "find_modules", "load_bibles", "prepare",
           "read_module", "split_of", "versification_units"]
