"""Tokens for the translator (genlab.data.tokenizers): characters and sentencepiece subwords, their round trips,
unseen characters, the plain state a checkpoint stores; length buckets; the data path; BLEU and chrF."""

from __future__ import annotations

import io

import pytest
import torch

from genlab.data.seq2seq import (
    BucketBatchSampler,
    Seq2SeqDataError,
    Seq2SeqDataModule,
    TokenVocab,
    resolve_path,
)
from genlab.data.tokenizers import CharTokenizer, SubwordTokenizer, tokenizer_from_state
from genlab.nets.seq2seq import BOS, EOS, PAD

ENGLISH = [f"the {c} {a} sat on the {p} number {n}" for n in range(12)
           for c, a, p in (("cat", "quietly", "mat"), ("dog", "happily", "porch"), ("bird", "sadly", "fence"))]


@pytest.fixture(scope="module")
def subword():
    return SubwordTokenizer.train(ENGLISH, 300)


def test_subword_round_trips_and_covers_unseen_characters_with_bytes(subword):
    assert subword.size == 300 and subword.kind == "subword"
    for text in ["the cat sat on the mat number 3", "ñ¿€中 and  two spaces", "Zebra!"]:
        ids = subword.encode(text)
        assert min(ids) > 3 and subword.decode(ids) == text  # never PAD/BOS/EOS/UNK: bytes spell what is unseen
    ids = subword.encode("ñ")
    assert subword.pieces(ids)[-2:] == ["<0xC3>", "<0xB1>"]  # UTF-8 of ñ, one piece per byte
    assert subword.decode([*subword.encode("the cat"), EOS, *subword.encode("dog")]) == "the cat"  # up to EOS
    assert subword.decode([BOS, *subword.encode("the cat"), PAD]) == "the cat"
    assert len(subword.encode("the cat sat on the mat")) < len("thecatsatonthemat")  # pieces, not letters


def test_subword_training_is_deterministic_and_its_state_is_plain_and_loads_with_weights_only(subword, tmp_path):
    assert SubwordTokenizer.train(ENGLISH, 300) == subword
    state = subword.state
    assert state.keys() == {"kind", "model"} and isinstance(state["model"], bytes)
    torch.save({"state": state}, tmp_path / "t.pt")
    again = tokenizer_from_state(torch.load(tmp_path / "t.pt", weights_only=True)["state"])
    assert again == subword and again.encode("the dog ñ") == subword.encode("the dog ñ")


def test_a_vocab_size_too_large_for_the_text_is_capped_and_too_small_is_one_line():
    small = SubwordTokenizer.train(["ab ab", "ba"], 1000)
    assert 260 <= small.size < 1000 and small.decode(small.encode("ab ba")) == "ab ba"
    with pytest.raises(ValueError, match="sentencepiece cannot learn 50 source pieces") as err:
        SubwordTokenizer.train(ENGLISH, 50)
    assert "\n" not in str(err.value)


def test_characters_round_trip_and_unseen_ones_are_one_line():
    chars = CharTokenizer.from_texts(["abc", "cab d"], "target")
    assert TokenVocab is CharTokenizer and chars.size == 5 + 3
    assert chars.decode(chars.encode("a bd")) == "a bd"
    assert tokenizer_from_state(chars.state) == chars and chars.state == {"kind": "char", "chars": " abcd"}
    with pytest.raises(ValueError, match=r"2 character\(s\) not in the model's target vocabulary: 'z', '€'") as err:
        chars.encode("az€")
    assert "\n" not in str(err.value)


def test_bucket_batches_hold_every_example_once_and_little_padding():
    torch.manual_seed(0)
    lengths = torch.randint(1, 200, (1000,)).tolist()
    sampler = BucketBatchSampler(torch.utils.data.RandomSampler(range(1000)), 16, False, lengths, chunk_batches=10)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 63
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 40  # random batches of 16 spread over ~170
    assert list(sampler) != batches  # a new order every epoch
    dropping = BucketBatchSampler(torch.utils.data.RandomSampler(range(1000)), 16, True, lengths, chunk_batches=10)
    assert all(len(b) == 16 for b in dropping) and len(list(dropping)) == len(dropping) == 62


def test_a_relative_data_path_is_found_under_the_data_root(tmp_path, monkeypatch):
    (tmp_path / "corpus").mkdir()
    for split in ("train", "val", "test"):
        (tmp_path / "corpus" / f"{split}.tsv").write_text("hello\thola\n", encoding="utf-8")
    monkeypatch.setenv("GENLAB_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path / "corpus")
    assert resolve_path("corpus") == tmp_path / "corpus"
    dm = Seq2SeqDataModule(path="corpus")
    dm.setup()
    assert dm.train_pairs == [("hello", "hola")]
    with pytest.raises(Seq2SeqDataError, match="run `genlab data bible-eng-spa` first") as err:
        Seq2SeqDataModule(path="bible_eng_spa").setup()
    assert "\n" not in str(err.value)


def test_bleu_and_chrf_are_sacrebleus():
    import sacrebleu

    from genlab.metrics.translation import bleu_with_signature, chrf_with_signature, corpus_bleu, corpus_chrf

    hyps = ["el gato se sentó en la alfombra", "hola mundo", "y dijo Dios: sea la luz"]
    refs = ["el gato se sentó sobre la alfombra", "hola a todo el mundo", "y dijo Dios: Sea la luz"]
    bleu, signature = bleu_with_signature(hyps, refs)
    assert bleu == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score) and corpus_bleu(hyps, refs) == bleu
    assert "tok:13a" in signature and "nrefs:1" in signature
    chrf, chrf_sig = chrf_with_signature(hyps, refs)
    assert chrf == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score) and corpus_chrf(hyps, refs) == chrf
    assert "chrF2" in chrf_sig or "nc:6" in chrf_sig
    assert 0 < bleu < 100 and 0 < chrf < 100
    assert bleu_with_signature(refs, refs)[0] == pytest.approx(100) and corpus_chrf(refs, refs) == pytest.approx(100)


def test_an_io_round_trip_of_the_model_proto_is_byte_exact(subword):
    buf = io.BytesIO(subword.state["model"])
    assert SubwordTokenizer(buf.getvalue()) == subword
