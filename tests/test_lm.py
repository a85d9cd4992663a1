"""The character-level transformer: attention maths, KV cache, sampling rules, training, checkpoints, CLI."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from genlab.callbacks.text_samples import TextSamplesCallback
from genlab.cli import main
from genlab.data import CharTextDataModule
from genlab.models.lm import LanguageModel
from genlab.nets.fast_dropout import ByteMaskDropout as Dropout
from genlab.nets.gpt import GPT, GPTConfig
from genlab.nets.transformer import (
    KVCache,
    attention_weights,
    causal_attention,
    causal_mask,
    merge_heads,
    sample_next,
)
from genlab.optim import MuonWithAdamW


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and leave the other core to whoever shares the machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TEXT = ("ROMEO:\nBut soft, what light through yonder window breaks?\n"
        "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\n") * 40


def lively_gpt(positional="learned", block_size=16, seed=0) -> GPT:
    """A small float64 GPT trained for a moment on a random token sequence, so that greedy decoding produces
    varied tokens (an untrained one just repeats a token), which makes cache-vs-no-cache comparisons meaningful."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=11, block_size=block_size, n_layer=2, n_head=2, n_embd=16,
                          positional=positional)).double()
    stream = torch.randperm(11).repeat(5)  # a cycle through every token: the next token is always determined
    windows = torch.stack([stream[i : i + block_size + 1] for i in range(len(stream) - block_size - 1)])
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(40):
        _, loss = model(windows[:, :-1], windows[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_sdpa_matches_reference_attention(positional):
    """Every layer's fused attention is softmax(Q K^T / sqrt(d)) V under the causal mask, written out; the model
    is causal."""
    model = lively_gpt(positional)
    idx = torch.randint(0, 11, (3, 16))
    full, _ = model(idx)
    x = model.embed(idx)
    for block in model.blocks:
        h = block.ln_1(x)
        q, k, v = block.attn.qkv(h)
        written = block.attn.c_proj(merge_heads(attention_weights(q, k, causal_mask(16, 16)) @ v))
        torch.testing.assert_close(block.attn(h), written, rtol=1e-10, atol=1e-10)
        x = block(x)
    torch.testing.assert_close(model.lm_head(model.ln_f(x)), full)
    # queries after cached keys (the masked SDPA branch) against the maths with the same offset
    q, k, v = torch.randn(2, 2, 3, 4).double(), torch.randn(2, 2, 7, 4).double(), torch.randn(2, 2, 7, 4).double()
    mask = torch.ones(3, 7, dtype=torch.bool).tril(4)
    torch.testing.assert_close(causal_attention(q, k, v), attention_weights(q, k, mask) @ v)
    torch.testing.assert_close(causal_attention(q[:, :, -1:], k, v), attention_weights(q[:, :, -1:], k) @ v)
    # causal: changing a later token leaves earlier logits alone
    changed = idx.clone()
    changed[:, 10] = (changed[:, 10] + 1) % 11
    after, _ = model(changed)
    torch.testing.assert_close(after[:, :10], full[:, :10])
    assert not torch.allclose(after[:, 10:], full[:, 10:])


@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_attention_maps_are_the_training_attention(positional):
    """GPT.attention_maps: the weights the blocks use, per layer and head; each row sums to 1 over the keys, nothing
    above the diagonal (causal), logits equal to the training forward's; and the block's output is c_proj(weights @ v)."""
    model = lively_gpt(positional)
    idx = torch.randint(0, 11, (2, 12))
    logits, maps = model.attention_maps(idx)
    cfg = model.config
    assert maps.shape == (cfg.n_layer, 2, cfg.n_head, 12, 12)
    torch.testing.assert_close(maps.sum(-1), torch.ones_like(maps.sum(-1)))
    below = torch.ones(12, 12, dtype=torch.bool).tril()
    assert torch.all(maps[..., ~below] == 0) and torch.all(maps[..., below] > 0)
    torch.testing.assert_close(logits, model(idx)[0], rtol=1e-10, atol=1e-10)
    # layer 0's map recomputed by hand from its projections: the same softmax(QK^T/sqrt(d))
    attn = model.blocks[0].attn
    x = model.blocks[0].ln_1(model.wte(idx) + (model.wpe(torch.arange(12)) if positional == "learned"
                                               else model.pe[:12]))
    heads = lambda t: t.view(2, 12, cfg.n_head, -1).transpose(1, 2)  # noqa: E731
    q, k, v = heads(attn.q_proj(x)), heads(attn.k_proj(x)), heads(attn.v_proj(x))
    torch.testing.assert_close(maps[0], attention_weights(q, k, causal_mask(12, 12)))
    torch.testing.assert_close(attn.c_proj(merge_heads(maps[0] @ v)), attn(x))
    model.train()  # attention_maps works in eval mode and restores the caller's mode
    model.attention_maps(idx)
    assert model.training


def golden_gpt() -> GPT:
    """A float64 GPT with N(0, 0.3) weights from fixed seeds: its greedy choices win by clear margins."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=16)).double()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.3)
    return model.eval()


def test_generation_is_what_the_layout_before_the_shared_attention_parts_generated():
    """Token ids written by genlab before nets/transformer.py (its own attention, cache and flags in nets/gpt.py):
    greedy, with and without the cache, past the window (16) where the cache re-encodes, and sampled under a seed."""
    model = golden_gpt()
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    before = [[10, 4, 6, 10, 10, 3, 8, 6, 10, 3, 1, 1, 1, 1, 1, 5, 5, 9, 9, 9, 9, 9, 9, 9, 9],
              [2, 1, 5, 5, 4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 4, 4, 4, 4, 4, 4, 4, 4, 4]]
    for use_cache in (True, False):
        assert model.generate(prompt, 25, temperature=0, use_cache=use_cache)[:, 3:].tolist() == before
    assert model.generate(prompt[0], 25, temperature=1.0, seed=3).tolist()[3:] == [
        0, 5, 10, 5, 5, 7, 0, 1, 10, 10, 6, 8, 5, 9, 9, 6, 5, 4, 1, 10, 4, 1, 4, 5, 5]


def test_cpu_dropout_drops_at_its_rate_keeps_the_mean_and_masks_the_gradient():
    """The byte-mask dropout: drop rate round(256 p)/256, kept values scaled so the mean is unchanged, the same mask
    in the gradient, reproducible under a seed, a no-op in eval mode, at p = 0, and for the dtype it is given."""
    torch.manual_seed(0)
    drop = Dropout(0.1).train()
    x = torch.ones(1000, 1000, requires_grad=True)
    y = drop(x)
    kept = (y > 0).float().mean().item()
    assert kept == pytest.approx(1 - 26 / 256, abs=2e-3)  # 1e6 draws: std 3e-4
    assert y.unique().tolist() == [0.0, pytest.approx(256 / 230)]
    assert y.mean().item() == pytest.approx(1.0, abs=5e-3)
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # d(x * m)/dx = m: dropped elements get no gradient
    torch.manual_seed(1)
    a = drop(torch.ones(4096))
    torch.manual_seed(1)
    assert torch.equal(a, drop(torch.ones(4096))) and not torch.equal(a, drop(torch.ones(4096)))
    bf16 = torch.randn(3, 5, 7).bfloat16()
    assert drop(bf16).dtype == torch.bfloat16 and drop(bf16).shape == (3, 5, 7)  # odd sizes: not a multiple of 8
    assert drop.eval()(bf16) is bf16 and Dropout(0.0).train()(bf16) is bf16
    assert Dropout(0.5).train()(torch.ones(100_000)).eq(0).float().mean().item() == pytest.approx(0.5, abs=0.01)
    rare = Dropout(0.001).train()  # below 1/256: F.dropout at the exact rate
    assert rare(torch.ones(1_000_000)).eq(0).sum().item() in range(850, 1150)


def test_attention_dropout_is_its_own_knob():
    """attn_dropout=0 keeps the attention weights exact in training mode (the fused CPU kernel) while `dropout`
    still acts on the residual branches; None follows `dropout`, as in nanoGPT."""
    from genlab.nets.gpt import CausalSelfAttention

    torch.manual_seed(0)
    cfg = dict(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.5)
    x = torch.randn(2, 8, 16)
    exact = CausalSelfAttention(GPTConfig(**cfg, attn_dropout=0.0)).train()
    exact.resid_dropout = torch.nn.Identity()  # look at the attention alone
    assert torch.equal(exact(x), exact(x))
    follows = CausalSelfAttention(GPTConfig(**cfg)).train()
    follows.load_state_dict(exact.state_dict())
    follows.resid_dropout = torch.nn.Identity()
    assert not torch.equal(follows(x), follows(x))
    with pytest.raises(ValueError, match="attn_dropout"):
        GPTConfig(**cfg, attn_dropout=1.0)


@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
@pytest.mark.parametrize("prompt_len, new", [(1, 10), (5, 30), (40, 12)])  # fits / slides past 16 / starts past
def test_kv_cache_greedy_equals_no_cache(positional, prompt_len, new):
    model = lively_gpt(positional)
    prompt = torch.randint(0, 11, (2, prompt_len), generator=torch.Generator().manual_seed(prompt_len))
    cached = model.generate(prompt, new, temperature=0, use_cache=True)
    plain = model.generate(prompt, new, temperature=0, use_cache=False)
    assert cached.shape == (2, prompt_len + new)
    assert torch.equal(cached, plain)
    assert len(set(cached[:, prompt_len:].flatten().tolist())) >= 3  # a real test, not a constant stream
    # sampling draws the same tokens too (same logits, same generator)
    a = model.generate(prompt[0], new, temperature=1.3, top_k=5, top_p=0.9, seed=7, use_cache=True)
    b = model.generate(prompt[0], new, temperature=1.3, top_k=5, top_p=0.9, seed=7, use_cache=False)
    assert torch.equal(a, b) and a.dim() == 1


def test_cache_forward_matches_full_forward():
    model = lively_gpt()
    idx = torch.randint(0, 11, (1, 16))
    full, _ = model(idx)
    cache = KVCache(model.config.n_layer, model.config.block_size)
    first, _ = model(idx[:, :9], cache=cache)  # prefill
    rest = [model(idx[:, i : i + 1], cache=cache)[0] for i in range(9, 16)]  # one token at a time
    torch.testing.assert_close(torch.cat([first, *rest], dim=1), full)
    with pytest.raises(ValueError, match="longer than block_size"):
        model(idx[:, :1], cache=cache)


def test_sampling_rules_and_errors():
    model = lively_gpt()
    for kwargs, message in [({"temperature": -0.1}, "temperature"), ({"top_p": 0.0}, "top_p"),
                            ({"top_p": 1.5}, "top_p"), ({"top_k": 0}, "top_k"),
                            ({"temperature": float("nan")}, "temperature")]:
        with pytest.raises(ValueError, match=message):
            model.generate([1, 2], 3, **kwargs)
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, -2.0]])
    assert sample_next(logits, 0.0).item() == 0  # greedy, no division by zero
    draws = lambda **kw: {sample_next(logits, generator=torch.Generator().manual_seed(s), **kw).item()  # noqa: E731
                          for s in range(200)}
    assert draws(temperature=1.0, top_k=1) == {0}
    assert draws(temperature=5.0, top_k=2) == {0, 1}
    # temperature comes before top-p: at T=1 token 0 alone holds p=0.64 >= 0.5; at T=10 the flatter
    # distribution needs three tokens to reach 0.5
    assert draws(temperature=1.0, top_p=0.5) == {0}
    assert draws(temperature=10.0, top_p=0.5) == {0, 1, 2}
    # top-k first, then top-p on what is left (renormalised): of tokens 0 and 1, token 0 alone holds 0.52
    assert draws(temperature=10.0, top_k=2, top_p=0.5) == {0}
    assert len(draws(temperature=3.0)) == 5  # no filter: every token can come up


def test_unknown_prompt_characters_are_listed():
    lm = LanguageModel(vocab="abc \n", n_layer=1, n_head=1, n_embd=8, block_size=8)
    with pytest.raises(ValueError, match=r"2 character\(s\) not in the model's vocabulary: 'X', 'z'"):
        lm.generate_text("abzX", 3)
    assert lm.generate_text("ab", 5, temperature=0.0).startswith("ab")


def test_optimizer_groups_and_schedule():
    lm = LanguageModel(vocab="abcd", n_layer=1, n_head=1, n_embd=8, block_size=8, learning_rate=1e-2,
                       warmup_steps=10, min_lr_ratio=0.1, weight_decay=0.3)
    lm.trainer = pl.Trainer(max_steps=110, max_epochs=-1, logger=False, enable_progress_bar=False)
    config = lm.configure_optimizers()
    opt, schedule = config["optimizer"], config["lr_scheduler"]["scheduler"]
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.3 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    n_tensors = len({id(p) for p in lm.parameters()})  # the tied head is one tensor
    assert len(decay["params"]) + len(no_decay["params"]) == n_tensors
    assert (schedule.total_steps, schedule.progress) == (110, None)  # max_steps: the decay ends there
    lrs = [schedule.lr_at(s) for s in range(111)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[9] == pytest.approx(1e-2)  # linear warmup
    assert lrs[60] == pytest.approx(0.55e-2) and lrs[110] == pytest.approx(1e-3)  # cosine to 10%
    assert schedule.lr_at(500) == pytest.approx(1e-3)  # then held
    assert all(a >= b - 1e-12 for a, b in zip(lrs[9:], lrs[10:], strict=False))


def test_gpt2_init_and_tied_head():
    model = GPT(GPTConfig(vocab_size=65, block_size=32, n_layer=4, n_head=2, n_embd=64))
    assert model.lm_head.weight is model.wte.weight
    assert model.blocks[0].attn.c_proj.weight.std().item() == pytest.approx(0.02 / math.sqrt(8), rel=0.1)
    assert model.blocks[0].mlp.c_fc.weight.std().item() == pytest.approx(0.02, rel=0.1)
    with pytest.raises(ValueError, match="positional"):
        GPTConfig(positional="rotary")


def tiny_data(tmp: Path, block_size=16) -> CharTextDataModule:
    path = tmp / "tiny.txt"
    path.write_text(TEXT, encoding="utf-8")
    return CharTextDataModule(path=str(path), block_size=block_size, batch_size=8)


def tiny_trainer(tmp: Path, **kwargs) -> pl.Trainer:
    defaults = dict(default_root_dir=str(tmp / "run"), max_steps=4, limit_val_batches=2, logger=False,
                    enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                    num_sanity_val_steps=0, val_check_interval=4, accelerator="cpu", devices=1)
    return pl.Trainer(**{**defaults, **kwargs})


@pytest.mark.slow  # about 20 s of compilation on 2 CPU cores
def test_compile_switch_trains_the_same_weights_and_keeps_the_checkpoint_keys(tmp_path):
    """compile: true runs the training forward through torch.compile: the same losses as eager mode (within
    float tolerance), the same checkpoint keys, and eager validation."""
    weights, losses = {}, {}
    for compile_ in (False, True):
        pl.seed_everything(0)
        lm = LanguageModel(n_layer=1, n_head=2, n_embd=16, block_size=16, learning_rate=3e-3, warmup_steps=1,
                           compile=compile_)
        trainer = tiny_trainer(tmp_path / str(compile_), max_steps=3, limit_val_batches=1, val_check_interval=3)
        trainer.fit(lm, datamodule=tiny_data(tmp_path))
        assert (lm._compiled_forward is not None) == compile_
        weights[compile_] = lm.state_dict()
        losses[compile_] = trainer.callback_metrics["val/loss"].item()
    assert weights[True].keys() == weights[False].keys()
    for key, value in weights[False].items():
        torch.testing.assert_close(weights[True][key], value, rtol=1e-3, atol=1e-4)
    assert losses[True] == pytest.approx(losses[False], rel=1e-3)


def test_bf16_mixed_trains_on_cpu(tmp_path):
    pl.seed_everything(0)
    lm = LanguageModel(n_layer=1, n_head=2, n_embd=16, block_size=16, learning_rate=3e-3, warmup_steps=1)
    trainer = tiny_trainer(tmp_path, precision="bf16-mixed", max_steps=3, limit_val_batches=1,
                           val_check_interval=3)
    trainer.fit(lm, datamodule=tiny_data(tmp_path))
    assert trainer.global_step == 3
    loss = trainer.callback_metrics["val/loss"]
    assert math.isfinite(loss.item()) and loss.item() < math.log(lm.config.vocab_size) + 0.5


def test_muon_option_trains_follows_the_schedule_and_resumes(tmp_path):
    """optimizer: muon puts every block matrix under Muon, the rest under AdamW; the one learning-rate schedule
    drives both; a checkpoint restores both optimizers' state and training goes on from it."""
    lm = LanguageModel(n_layer=2, n_head=2, n_embd=16, block_size=16, optimizer="muon", learning_rate=1e-2,
                       warmup_steps=2, weight_decay=0.2)
    with pytest.raises(ValueError, match="optimizer must be 'adamw' or 'muon'"):
        LanguageModel(optimizer="sgd")
    pl.seed_everything(0)
    trainer = tiny_trainer(tmp_path, max_steps=6, val_check_interval=6, enable_checkpointing=True)
    trainer.fit(lm, datamodule=tiny_data(tmp_path))
    opt = trainer.optimizers[0]
    assert isinstance(opt, MuonWithAdamW)
    muon = [p for g in opt.muon.param_groups for p in g["params"]]
    assert {id(p) for p in muon} == {id(p) for p in lm.model.blocks.parameters() if p.dim() == 2}
    adamw = {id(p) for g in opt.adamw.param_groups for p in g["params"]}
    assert {id(lm.model.wte.weight), id(lm.model.wpe.weight)} <= adamw  # the embeddings (and the tied head)
    assert len(muon) + len(adamw) == len({id(p) for p in lm.parameters()})
    assert opt.muon.param_groups[0]["weight_decay"] == 0.2
    schedule = trainer.lr_scheduler_configs[0].scheduler  # after 6 steps, the groups hold step 6's rate
    assert schedule.lr_at(6) < 1e-2
    assert all(g["lr"] == pytest.approx(schedule.lr_at(6)) for g in opt.param_groups)  # the schedule reached both
    first_loss = trainer.callback_metrics["train/loss"].item()
    assert math.isfinite(first_loss) and trainer.callback_metrics["val/loss"].item() < math.log(lm.config.vocab_size)

    ckpt = tmp_path / "muon.ckpt"
    trainer.save_checkpoint(ckpt)
    saved = torch.load(ckpt, weights_only=True)["optimizer_states"][0]
    fresh_lm = LanguageModel(n_layer=2, n_head=2, n_embd=16, block_size=16, optimizer="muon", vocab=lm.vocab.chars)
    fresh_lm.trainer = pl.Trainer(max_steps=6, max_epochs=-1, logger=False, enable_progress_bar=False)
    fresh = fresh_lm.configure_optimizers()["optimizer"]
    fresh.load_state_dict(saved)
    for inner, inner_fresh in ((opt.muon, fresh.muon), (opt.adamw, fresh.adamw)):
        for p, q in zip((p for g in inner.param_groups for p in g["params"]),
                        (q for g in inner_fresh.param_groups for q in g["params"]), strict=True):
            for key, value in inner.state[p].items():
                assert torch.equal(inner_fresh.state[q][key], value), key
    assert fresh.param_groups[0]["lr"] == pytest.approx(schedule.lr_at(6))
    resumed = LanguageModel(n_layer=2, n_head=2, n_embd=16, block_size=16, optimizer="muon", learning_rate=1e-2,
                            warmup_steps=2)
    trainer2 = tiny_trainer(tmp_path, max_steps=8, val_check_interval=2)
    trainer2.fit(resumed, datamodule=tiny_data(tmp_path), ckpt_path=str(ckpt))
    assert trainer2.global_step == 8 and math.isfinite(trainer2.callback_metrics["train/loss"].item())
    adamw = LanguageModel(n_layer=2, n_head=2, n_embd=16, block_size=16, optimizer="adamw")
    with pytest.raises(ValueError, match="trained with optimizer: muon.*Set optimizer: muon to resume"):
        tiny_trainer(tmp_path, max_steps=8).fit(adamw, datamodule=tiny_data(tmp_path), ckpt_path=str(ckpt))
    with pytest.raises(ValueError, match="not MuonWithAdamW's"):
        trainer2.optimizers[0].load_state_dict(torch.optim.AdamW(lm.parameters()).state_dict())


def test_a_checkpoint_without_a_schedule_state_resumes_its_schedule_at_its_step(tmp_path):
    """Language-model checkpoints from before WarmupCosine hold no schedule state (the rate was set by hand at
    each step): resumed, the schedule goes on from the checkpoint's step, not from the start of the warm-up."""
    pl.seed_everything(0)
    lm = LanguageModel(n_layer=1, n_head=2, n_embd=16, block_size=16, learning_rate=1e-2, warmup_steps=4)
    trainer = tiny_trainer(tmp_path, max_steps=4)
    trainer.fit(lm, datamodule=tiny_data(tmp_path))
    ckpt = tmp_path / "before.ckpt"
    trainer.save_checkpoint(ckpt)
    checkpoint = torch.load(ckpt, weights_only=True)
    checkpoint["lr_schedulers"] = []  # what such a checkpoint holds
    torch.save(checkpoint, ckpt)
    rates = []

    class Rates(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            rates.append(trainer.optimizers[0].param_groups[0]["lr"])

    resumed = LanguageModel(n_layer=1, n_head=2, n_embd=16, block_size=16, learning_rate=1e-2, warmup_steps=4)
    trainer2 = tiny_trainer(tmp_path, max_steps=6, val_check_interval=2, callbacks=[Rates()])
    trainer2.fit(resumed, datamodule=tiny_data(tmp_path), ckpt_path=str(ckpt))
    schedule = trainer2.lr_scheduler_configs[0].scheduler
    assert rates == [pytest.approx(schedule.lr_at(4)), pytest.approx(schedule.lr_at(5))]
    assert rates[0] == pytest.approx(1e-2) and schedule.lr_at(0) == pytest.approx(2.5e-3)  # past the warm-up


def test_train_save_and_generate_without_data(tmp_path, monkeypatch, capsys):
    """Vocab from the data at fit time, into the checkpoint; `genlab generate` then needs no data set."""
    pl.seed_everything(0)
    data = tiny_data(tmp_path)
    lm = LanguageModel(n_layer=1, n_head=2, n_embd=16, block_size=16, positional="sinusoidal",
                       learning_rate=1e-2, warmup_steps=2)
    trainer = tiny_trainer(tmp_path, callbacks=[TextSamplesCallback(prompt="JULIET:", max_new_tokens=20)])
    trainer.fit(lm, datamodule=data)
    assert lm.vocab.chars == "".join(sorted(set(TEXT)))
    for key in ("train/loss", "train/lr", "train/tokens_per_s", "val/loss", "val/bpc"):
        assert key in trainer.callback_metrics, key
    assert trainer.callback_metrics["val/bpc"].item() == pytest.approx(
        trainer.callback_metrics["val/loss"].item() / math.log(2))
    table = (tmp_path / "run" / "figures" / "samples" / "text.md").read_text()
    assert table.count("| 0.5 |") + table.count("| 1.0 |") + table.count("| 1.5 |") == 3 and "JULIET:" in table
    ckpt = tmp_path / "lm.ckpt"
    trainer.save_checkpoint(ckpt)
    saved = torch.load(ckpt, weights_only=True)
    assert saved["hyper_parameters"]["vocab"] == lm.vocab.chars
    assert saved["hyper_parameters"]["positional"] == "sinusoidal"

    (tmp_path / "tiny.txt").unlink()
    monkeypatch.setenv("GENLAB_DATA_DIR", str(tmp_path / "no-data-here"))
    capsys.readouterr()
    assert main(["generate", "--ckpt", str(ckpt), "--prompt", "ROMEO:", "--temperature", "0", "0.8", "1.2",
                 "--max-new-tokens", "30", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    for t in ("0", "0.8", "1.2"):
        assert f"===== temperature {t}" in out
    samples = [block.split("\n", 1)[1].strip("\n") for block in out.split("===== ")[1:]]
    assert len(samples) == 3 and all(s.startswith("ROMEO:") and len(s) == 36 for s in samples)
    greedy = lm.eval().generate_text("ROMEO:", 30, temperature=0)
    assert samples[0] == greedy  # the CLI's model is the trained one

    # the same seed gives the same text
    main(["generate", "--ckpt", str(ckpt), "--prompt", "ROMEO:", "--temperature", "1.0", "--max-new-tokens", "30",
          "--seed", "3"])
    first = capsys.readouterr().out
    main(["generate", "--ckpt", str(ckpt), "--prompt", "ROMEO:", "--temperature", "1.0", "--max-new-tokens", "30",
          "--seed", "3", "--no-cache"])
    assert capsys.readouterr().out == first


def tiny_lm_checkpoint(tmp_path) -> Path:
    torch.manual_seed(0)
    lm = LanguageModel(vocab="".join(sorted(set(TEXT))), n_layer=2, n_head=2, n_embd=16, block_size=64)
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_steps=0)
    trainer.strategy.connect(lm)
    ckpt = tmp_path / "lm.ckpt"
    trainer.save_checkpoint(ckpt)
    return ckpt


def test_attention_cli_draws_every_layer_and_head(tmp_path, capsys):
    from genlab.figures.lm import text_attention
    from genlab.models.lm import LanguageModel as LM

    ckpt = tiny_lm_checkpoint(tmp_path)
    text = TEXT[:40]
    assert main(["attention", "--ckpt", str(ckpt), "--text", text, "--out", str(tmp_path / "a.png")]) == 0
    assert "2 layers x 2 heads over 40 characters" in capsys.readouterr().out
    from PIL import Image

    width, height = Image.open(tmp_path / "a.png").size
    assert width > 600 and height > 600  # 2 x 2 panels of 40 labelled characters
    weights = text_attention(LM.load_from_checkpoint(ckpt, weights_only=True), text)
    assert weights.shape == (2, 2, 40, 40)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 40))
    assert torch.all(weights.triu(diagonal=1) == 0)
    # bad input: one line naming the problem
    assert main(["attention", "--ckpt", str(ckpt), "--text", "ROMEO: \u00e9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--text" in err and "not in the model's vocabulary" in err
    assert main(["attention", "--ckpt", str(ckpt), "--text", "a" * 65]) == 2
    assert "more than the model's context of 64; shorten it" in capsys.readouterr().err


def test_temperature_distribution_bars_and_entropy(tmp_path, capsys):
    from genlab.figures.lm import entropy_bits, temperature_probs

    z = torch.tensor([3.0, 1.0, 0.5, 0.0, -2.0])
    for t in (0.5, 1.0, 1.7):
        torch.testing.assert_close(temperature_probs(z, t), torch.softmax(z.double() / t, -1))
    assert temperature_probs(z, 0).tolist() == [1.0, 0, 0, 0, 0]
    entropies = [entropy_bits(temperature_probs(z, t)) for t in torch.linspace(0.1, 2.0, 20).tolist()]
    assert all(a < b for a, b in zip(entropies, entropies[1:], strict=False))  # flatter as T grows
    assert entropies[-1] < math.log2(5) and entropy_bits(temperature_probs(z, 0)) == 0.0

    ckpt = tiny_lm_checkpoint(tmp_path)
    out = tmp_path / "t.png"
    assert main(["generate", "--ckpt", str(ckpt), "--prompt", "ROMEO:", "--temperature", "0.5", "1", "1.5",
                 "--max-new-tokens", "5", "--seed", "0", "--show-distribution", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.exists() and "next-character distribution at T = 0.5, 1, 1.5" in printed
    assert "===== temperature 1.5" in printed


def test_training_logs_the_attention_maps_at_validation(tmp_path):
    pl.seed_everything(0)
    lm = LanguageModel(n_layer=1, n_head=2, n_embd=16, block_size=16, warmup_steps=2)
    text = TEXT[:16]
    trainer = tiny_trainer(tmp_path, callbacks=[TextSamplesCallback(prompt="JULIET:", max_new_tokens=5,
                                                                    attention_text=text)])
    trainer.fit(lm, datamodule=tiny_data(tmp_path))
    figures = tmp_path / "run" / "figures"
    assert (figures / "attention" / "maps.png").exists() and list((figures / "attention" / "maps").glob("epoch_*.png"))
    # a text the data never had: one warning, training goes on
    with pytest.warns(UserWarning, match="no attention maps .*not in the model's vocabulary"):
        tiny_trainer(tmp_path / "b", callbacks=[TextSamplesCallback(prompt="JULIET:", max_new_tokens=5,
                                                                    attention_text="\u00e9\u00e9")]).fit(
            LanguageModel(n_layer=1, n_head=2, n_embd=16, block_size=16), datamodule=tiny_data(tmp_path))


def test_generate_cli_bad_arguments(tmp_path, capsys):
    lm = LanguageModel(vocab="ROME:\n abc", n_layer=1, n_head=1, n_embd=8, block_size=8)
    ckpt = tmp_path / "lm.ckpt"
    checkpoint = {"state_dict": lm.state_dict(), "hyper_parameters": dict(lm.hparams)}
    lm.on_save_checkpoint(checkpoint)  # what Lightning calls: names the class
    torch.save(checkpoint, ckpt)
    for args, message in [(["--temperature", "-1"], "temperature must be"),
                          (["--top-p", "0"], "top_p must be in"),
                          (["--top-k", "0"], "top_k must be"),
                          (["--max-new-tokens", "-5"], "max_new_tokens")]:
        assert main(["generate", "--ckpt", str(ckpt), *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "--ckpt", str(ckpt), "--temperature", "warm"])
    assert exit_.value.code == 2 and "invalid float value" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["generate"])  # --ckpt is required
    assert "--ckpt" in capsys.readouterr().err
    assert main(["generate", "--ckpt", str(tmp_path / "missing.ckpt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["generate", "--ckpt", str(ckpt), "--prompt", "JULIET!"]) == 2
    err = capsys.readouterr().err
    assert "not in the model's vocabulary" in err and "'J'" in err and "'!'" in err


def test_time_budget_schedule_reads_the_timer_through_its_public_accessors(monkeypatch):
    """lr_decay by the clock: Lightning's Timer is found by type, its budget read through time_elapsed and
    time_remaining, and the learning rate is halfway down the cosine when half the budget is spent."""
    from pytorch_lightning.callbacks import Timer

    lm = LanguageModel(vocab="ab", block_size=4, n_layer=1, n_head=1, n_embd=8, learning_rate=1e-3,
                       min_lr_ratio=0.1, warmup_steps=2)
    trainer = pl.Trainer(max_time={"seconds": 100}, logger=False, enable_progress_bar=False)
    lm.trainer = trainer
    schedule = lm.configure_optimizers()["lr_scheduler"]["scheduler"]
    (timer,) = [c for c in trainer.callbacks if isinstance(c, Timer)]
    assert schedule.total_steps is None and schedule.progress is not None
    monkeypatch.setattr(timer, "time_elapsed", lambda stage="train": 50.0)
    assert schedule.lr_at(10) == pytest.approx(1e-4 + 0.5 * (1e-3 - 1e-4))
    monkeypatch.setattr(timer, "time_elapsed", lambda stage="train": 100.0)
    assert schedule.lr_at(10) == pytest.approx(1e-4)
    assert schedule.lr_at(0) == pytest.approx(5e-4)  # warmup does not look at the clock
