"""OSIS markup to plain text, and the Spanish module's print conventions undone (genlab.data.bible says what)."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping

from genlab.data.bible.versification import Ref

# The Spanish module adds an ancient subscription ("Fué escrita de Corinto á los Romanos ...") after the last
# "Amén." of each of these books.
SUBSCRIBED_BOOKS = ("Rom", "1Cor", "2Cor", "Gal", "Eph", "Phil", "Col", "1Thess", "2Thess", "1Tim", "2Tim",
                    "Titus", "Phlm", "Heb")

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
