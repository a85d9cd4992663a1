"""The 66 books, verse references, and the table that pairs the English and Spanish modules' verse numbers."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

# The 66 books in canonical order, by OSIS id (the names pysword and the modules use).
BOOKS = (
    "Gen Exod Lev Num Deut Josh Judg Ruth 1Sam 2Sam 1Kgs 2Kgs 1Chr 2Chr Ezra Neh Esth Job Ps Prov Eccl Song Isa "
    "Jer Lam Ezek Dan Hos Joel Amos Obad Jonah Mic Nah Hab Zeph Hag Zech Mal "
    "Matt Mark Luke John Acts Rom 1Cor 2Cor Gal Eph Phil Col 1Thess 2Thess 1Tim 2Tim Titus Phlm Heb Jas 1Pet 2Pet "
    "1John 2John 3John Jude Rev"
).split()
BOOK_INDEX = {b: i for i, b in enumerate(BOOKS)}
NEW_TESTAMENT = frozenset(BOOKS[BOOKS.index("Matt"):])

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
