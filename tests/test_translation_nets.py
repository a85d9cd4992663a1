"""genlab's three translator nets behind one interface (genlab.nets.decoding.TranslationNet): the transformer
(nets/seq2seq.py), the GRU encoder-decoder (nets/gru_seq2seq.py) and the decoder-only baseline
(nets/decoder_only.py). Each is checked for what a translator must do: shapes, causality, source padding,
cached decoding, beam search, learning; and the transformer against what it decoded before the decoding moved
into the shared base class."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genlab.nets.decoding import BOS, EOS, PAD, TranslationNet
from genlab.nets.seq2seq import ARCHITECTURES, Seq2Seq, Seq2SeqConfig, build_translation_net

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "seq2seq_decoding.pt"
V_SRC, V_TGT = 20, 12


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny nets run faster on one thread, and a second OpenMP thread spin-waits when the machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_net(architecture: str, seed: int = 0, scale: float = 0.3, **sizes) -> TranslationNet:
    """A tiny net; with `scale`, its matrices redrawn N(0, scale) so that outputs depend visibly on every input."""
    torch.manual_seed(seed)
    kwargs = dict(d_model=32, n_head=4, n_enc_layer=2, n_dec_layer=2, max_src_len=16, max_tgt_len=10) | sizes
    net = build_translation_net(architecture, V_SRC, V_TGT, **kwargs)
    if scale:
        with torch.no_grad():
            for p in net.parameters():
                if p.dim() >= 2:
                    p.normal_(0, scale)
    return net.eval()


def random_pairs(n_src: int = 7, n_tgt: int = 6, batch: int = 3, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    src = torch.randint(3, V_SRC, (batch, n_src), generator=gen)
    tgt = torch.randint(3, V_TGT, (batch, n_tgt), generator=gen)
    tgt[:, 0] = BOS
    return src, tgt


def sequence_logprob(net, src, ys) -> torch.Tensor:
    """Per row, the sum of log-probabilities the decoding search maximises (PAD and BOS excluded, as there) of
    the tokens after BOS up to EOS; -inf for a row that never reached EOS."""
    total = []
    for row, s in zip(ys, src, strict=True):
        toks = [i for i in row.tolist() if i != PAD]
        logits = net(s[None], torch.tensor([toks[:-1]]))[0]
        logits = logits.index_fill(-1, torch.tensor([PAD, BOS]), float("-inf"))
        lp = logits.log_softmax(-1)[torch.arange(len(toks) - 1), torch.tensor(toks[1:])]
        total.append(lp.sum().item() if toks[-1] == EOS else float("-inf"))
    return torch.tensor(total)


# --- the factory


def test_factory_builds_each_architecture_with_the_depth_asked_and_names_the_choices():
    nets = {a: tiny_net(a, scale=0, n_enc_layer=2, n_dec_layer=3) for a in ARCHITECTURES}
    assert type(nets["transformer"]).__name__ == "Seq2Seq"
    assert (len(nets["transformer"].encoder), len(nets["transformer"].decoder)) == (2, 3)
    assert (nets["gru"].encoder.num_layers, nets["gru"].encoder.bidirectional, nets["gru"].decoder.num_layers) == (
        2, True, 3)
    assert len(nets["decoder_only"].layers) == 5  # encoder + decoder depth in one causal stack
    for net in nets.values():
        assert isinstance(net, TranslationNet) and net.max_tgt_len == 10
    with pytest.raises(ValueError, match="unknown architecture 'lstm': choose one of transformer, gru, decoder_only"):
        build_translation_net("lstm", V_SRC, V_TGT)


def test_parameter_counts_are_comparable_at_the_same_width():
    sizes = dict(d_model=64, n_head=4, n_enc_layer=2, n_dec_layer=2, d_ff=256, max_src_len=32, max_tgt_len=32)
    counts = {a: sum(p.numel() for p in build_translation_net(a, 500, 500, **sizes).parameters())
              for a in ARCHITECTURES}
    assert max(counts.values()) < 1.3 * min(counts.values()), counts


# --- what every translator must do


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_shapes(architecture):
    net = tiny_net(architecture)
    src, tgt = random_pairs()
    src[1, 5:] = PAD
    assert net(src, tgt).shape == (3, 6, V_TGT)
    maps = net.cross_attention_maps(src, tgt)
    heads, layers = {"transformer": (4, 2), "gru": (1, 1), "decoder_only": (4, 4)}[architecture]
    assert len(maps) == layers and all(m.shape == (3, heads, 6, 7) for m in maps)
    for m in maps:
        assert torch.all(m[1, ..., 5:] == 0) and torch.all(m[0] > 0)  # PAD gets no attention, the rest some
        if architecture == "decoder_only":  # a slice of self-attention: the rest goes to earlier target tokens
            assert torch.all(m.sum(-1) <= 1 + 1e-6)
        else:
            torch.testing.assert_close(m.sum(-1), torch.ones(m.shape[:-1]))
    ys = net.generate(src, max_len=8)
    assert ys.shape[0] == 3 and ys.shape[1] <= 8 and torch.all(ys[:, 0] == BOS)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_target_position_t_sees_no_later_target_and_every_source_token(architecture):
    net = tiny_net(architecture)
    src, tgt = random_pairs(batch=1)
    base = net(src, tgt)
    t = 2
    later = tgt.clone()
    later[0, t + 1 :] = (later[0, t + 1 :] - 3 + 1) % (V_TGT - 3) + 3  # change every target token after t
    out = net(src, later)
    torch.testing.assert_close(out[0, : t + 1], base[0, : t + 1], rtol=0, atol=1e-5)
    assert not torch.allclose(out[0, t + 1 :], base[0, t + 1 :], atol=1e-3)
    for s in range(src.size(1)):  # every source position, first and last included, reaches target position 0
        other = src.clone()
        other[0, s] = (other[0, s] - 3 + 1) % (V_SRC - 3) + 3
        assert not torch.allclose(net(other, tgt)[0, 0], base[0, 0], atol=1e-4), f"source position {s} unseen"


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_source_padding_changes_nothing(architecture):
    net = tiny_net(architecture)
    src, tgt = random_pairs(n_src=5, batch=2)
    alone = net(src, tgt)
    padded = torch.cat([src, torch.full((2, 4), PAD)], dim=1)  # PAD appended to every source row
    torch.testing.assert_close(net(padded, tgt), alone, rtol=0, atol=1e-5)
    # batched with a longer source, each row's logits and translations stay what they are alone
    longer = torch.randint(3, V_SRC, (1, 9), generator=torch.Generator().manual_seed(5))
    batch = torch.cat([padded, longer], dim=0)
    tgt3 = torch.cat([tgt, tgt[:1]], dim=0)
    torch.testing.assert_close(net(batch, tgt3)[:2], alone, rtol=0, atol=1e-5)

    def unpadded(ys):
        return [[i for i in row if i != PAD] for row in ys.tolist()]

    assert unpadded(net.generate(batch))[:2] == unpadded(net.generate(src))
    assert unpadded(net.beam_search(batch, beam=3))[:2] == unpadded(net.beam_search(src, beam=3))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_decoding_with_the_cache_is_decoding_without_it(architecture):
    net = tiny_net(architecture)
    src, _ = random_pairs(n_src=9, batch=5)
    src[1, 6:] = PAD
    src[3, 2:] = PAD
    greedy = net.generate(src, use_cache=False)
    assert greedy.size(1) > 3  # long enough for the cache to be used over several steps
    assert torch.equal(net.generate(src, use_cache=True), greedy)
    assert torch.equal(net.beam_search(src, beam=3, use_cache=True), net.beam_search(src, beam=3, use_cache=False))
    sampled = [net.generate(src, temperature=0.8, top_k=5, top_p=0.9, generator=torch.Generator().manual_seed(1),
                            use_cache=use_cache) for use_cache in (True, False)]
    assert torch.equal(*sampled)
    assert not torch.equal(sampled[0], greedy)  # the draw is a draw


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_beam_width_one_is_greedy_and_wider_beams_score_at_least_as_well(architecture):
    """Beam search is not exact search: the greedy path can fall out of the beam, and a source whose beam
    finishes nothing within max_len gets its best open hypothesis. So the scores are compared where both searches
    reach EOS, on random nets with room to finish (max_tgt_len 16)."""
    net = tiny_net(architecture, max_tgt_len=16)
    src, _ = random_pairs(n_src=8, batch=8, seed=1)
    greedy = net.generate(src)
    for g, b in zip(greedy.tolist(), net.beam_search(src, beam=1).tolist(), strict=True):
        assert [i for i in g if i != PAD] == [i for i in b if i != PAD]
    g_score, b_score = sequence_logprob(net, src, greedy), sequence_logprob(net, src, net.beam_search(src, beam=4))
    both = torch.isfinite(g_score) & torch.isfinite(b_score)
    assert both.sum() >= 2, "too few translations reach EOS for the comparison to mean anything"
    assert torch.all(b_score[both] >= g_score[both] - 1e-4)
    assert torch.any(b_score[both] > g_score[both] + 1e-3)  # and the wider beam does find better ones


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_each_net_learns_four_pairs_by_heart(architecture):
    torch.manual_seed(0)
    net = build_translation_net(architecture, V_SRC, V_TGT, d_model=32, n_head=4, n_enc_layer=1, n_dec_layer=1,
                                max_src_len=16, max_tgt_len=10)
    pairs = [([5, 6, 7], [3, 4]), ([8, 9, 10, 11, 12], [5, 6, 7, 8]), ([13, 14], [9, 10, 11]),
             ([15, 16, 17, 18], [11, 3, 5, 7, 9])]  # targets that are no copy of their sources
    S, T = max(len(s) for s, _ in pairs), max(len(t) for _, t in pairs) + 2
    src = torch.tensor([s + [PAD] * (S - len(s)) for s, _ in pairs])
    tgt = torch.tensor([[BOS, *t, EOS] + [PAD] * (T - len(t) - 2) for _, t in pairs])
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for _ in range(200):
        logits = net(src, tgt[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V_TGT), tgt[:, 1:].reshape(-1), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    assert loss.item() < 0.05
    want = [[BOS, *t, EOS] for _, t in pairs]
    assert [[i for i in row if i != PAD] for row in net.generate(src).tolist()] == want
    assert [[i for i in row if i != PAD] for row in net.beam_search(src, beam=3).tolist()] == want


def test_over_long_inputs_are_clear_errors():
    src, _ = random_pairs(n_src=17, batch=1)
    with pytest.raises(ValueError, match="source of 17 tokens is longer than max_src_len=16"):
        tiny_net("decoder_only").generate(src)
    with pytest.raises(ValueError, match="source of 17 tokens is longer than max_src_len=16"):
        tiny_net("transformer").generate(src)
    _, tgt = random_pairs(n_tgt=11, batch=1)
    for architecture in ("transformer", "decoder_only"):
        with pytest.raises(ValueError, match="target of 11 tokens is longer than max_tgt_len=10"):
            tiny_net(architecture)(src[:, :5], tgt)


class ScriptedNet(TranslationNet):
    """Not a network: next-token log-probabilities looked up by the target prefix, to test the search itself.
    Tokens: 3 = "a", 4 = "b"; unlisted prefixes end at once."""

    config = type("Config", (), {"max_tgt_len": 8})()
    table = {(): {3: -0.01, EOS: -5.0, 4: -6.0}, (3,): {3: -0.01, EOS: -7.0, 4: -8.0}, (3, 3): {EOS: -0.01}}

    def encode(self, src):
        return src, src != PAD

    def step_logits(self, ys, memory, src_mask, cache):
        out = torch.full((ys.size(0), 5), -30.0)
        for row, prefix in enumerate(ys[:, 1:].tolist()):
            for tok, lp in self.table.get(tuple(prefix), {EOS: 0.0}).items():
                out[row, tok] = lp
        return out

    def new_cache(self, batch):
        return None


def test_beam_search_does_not_stop_when_unlikely_hypotheses_end_early():
    """Width 2: "EOS" (-5) and "b EOS" (-6) finish in the first two steps, while "a a EOS" (-0.03), the greedy
    translation, finishes in the third. Stopping after `beam` finished hypotheses returned "EOS"."""
    net, src = ScriptedNet(), torch.tensor([[5, 6]])
    assert net.generate(src, use_cache=False).tolist() == [[BOS, 3, 3, EOS]]
    assert net.beam_search(src, beam=2, use_cache=False).tolist() == [[BOS, 3, 3, EOS]]


# --- the transformer decodes as before the move into TranslationNet


def pinned_net() -> Seq2Seq:
    """tests/fixtures/make_seq2seq_decoding.py's net: float64, N(0, 0.3) matrices from fixed seeds."""
    torch.manual_seed(0)
    net = Seq2Seq(Seq2SeqConfig(src_vocab_size=20, tgt_vocab_size=12, d_model=32, n_head=4, max_src_len=16,
                                max_tgt_len=10)).double()
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.3)
    return net.eval()


def test_transformer_decodes_what_it_decoded_before_the_shared_decoding():
    pinned = torch.load(FIXTURE, weights_only=True)
    net = pinned_net()
    src = torch.tensor([[5, 6, 7, 8, 9, 10, 11], [11, 12, 13, 14, PAD, PAD, PAD], [19, 3, 4, 18, 17, 16, 3],
                        [4, 4, 9, PAD, PAD, PAD, PAD]])
    tgt = torch.tensor([[1, 4, 5, 6, 7, 2], [1, 9, 8, 2, 0, 0], [1, 3, 3, 3, 11, 10], [1, 2, 0, 0, 0, 0]])
    torch.testing.assert_close(net(src, tgt), pinned["logits"], rtol=1e-9, atol=1e-9)
    for use_cache in (True, False):
        tag = "cache" if use_cache else "nocache"
        assert torch.equal(net.generate(src, use_cache=use_cache), pinned[f"greedy_{tag}"])
        sampled = net.generate(src, temperature=0.8, top_k=6, top_p=0.95, generator=torch.Generator().manual_seed(3),
                               use_cache=use_cache)
        assert torch.equal(sampled, pinned[f"sampled_{tag}"])
        assert torch.equal(net.beam_search(src, beam=4, use_cache=use_cache), pinned[f"beam4_{tag}"])
    # the pinned beam differs from greedy on some rows, so both code paths are pinned
    assert not torch.equal(pinned["beam4_cache"][:, :4], pinned["greedy_cache"][:, :4])
