"""Translation quality with sacreBLEU, one reference per sentence: corpus BLEU (with its signature, the string that
says how it was computed), chrF, and the share of exact matches."""

from __future__ import annotations


def bleu_with_signature(hypotheses: list[str], references: list[str], tokenize: str = "13a") -> tuple[float, str]:
    """sacreBLEU's corpus BLEU (0-100) and its signature, e.g. "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|
    version:2.6.0". tokenize: "13a" (sacreBLEU's default) for sentences of words, "char" for character strings such
    as dates (a date is one word, so word 4-grams would not exist)."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU(tokenize=tokenize)
    return float(bleu.corpus_score(hypotheses, [references]).score), str(bleu.get_signature())


def corpus_bleu(hypotheses: list[str], references: list[str], tokenize: str = "13a") -> float:
    """sacreBLEU's corpus BLEU (0-100), as bleu_with_signature without the signature."""
    return bleu_with_signature(hypotheses, references, tokenize)[0]


def chrf_with_signature(hypotheses: list[str], references: list[str]) -> tuple[float, str]:
    """sacreBLEU's corpus chrF (0-100; character 6-grams, beta 2: sacrebleu.CHRF's defaults) and its signature."""
    from sacrebleu.metrics import CHRF

    chrf = CHRF()
    return float(chrf.corpus_score(hypotheses, [references]).score), str(chrf.get_signature())


def corpus_chrf(hypotheses: list[str], references: list[str]) -> float:
    """sacreBLEU's corpus chrF (0-100), as chrf_with_signature without the signature."""
    return chrf_with_signature(hypotheses, references)[0]


def exact_match(hypotheses: list[str], references: list[str]) -> float:
    """The share of hypotheses equal to their reference (0 for no sentences)."""
    return sum(h == r for h, r in zip(hypotheses, references, strict=True)) / max(1, len(references))
