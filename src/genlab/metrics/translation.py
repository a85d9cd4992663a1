"""Translation quality: sacreBLEU's corpus BLEU and the share of exact matches, one reference per sentence."""

from __future__ import annotations


def corpus_bleu(hypotheses: list[str], references: list[str], tokenize: str = "13a") -> float:
    """sacreBLEU's corpus BLEU (0-100) with one reference per sentence. tokenize: "13a" for sentences of words,
    "char" for character strings such as dates (a date is one word, so word 4-grams would not exist)."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(hypotheses, [references], tokenize=tokenize).score)


def exact_match(hypotheses: list[str], references: list[str]) -> float:
    """The share of hypotheses equal to their reference (0 for no sentences)."""
    return sum(h == r for h, r in zip(hypotheses, references, strict=True)) / max(1, len(references))
