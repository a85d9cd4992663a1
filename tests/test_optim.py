"""The one learning-rate schedule (genlab.optim.WarmupCosine): every model's curve, step by step, against the
formula it followed before; held past the planned end; re-planned when a finished run is trained longer."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch

from genlab.models.classifier import Classifier
from genlab.models.lm import LanguageModel
from genlab.models.seq2seq import Translator
from genlab.models.vae import VAE
from genlab.optim import WarmupCosine, one_cycle, warmup_cosine, weight_decay_groups


def planned(total: int, **kwargs) -> pl.Trainer:
    """A Trainer whose estimated_stepping_batches is `total` without any data."""
    return pl.Trainer(max_steps=total, max_epochs=-1, logger=False, enable_progress_bar=False,
                      enable_checkpointing=False, **kwargs)


def schedule_of(model, trainer: pl.Trainer) -> WarmupCosine:
    model.trainer = trainer
    return model.configure_optimizers()["lr_scheduler"]["scheduler"]


def stepped(schedule, n: int, read=lambda group: (group["lr"],)) -> list[list]:
    """What `read` finds in each parameter group at each of n optimizer steps, stepped as Lightning steps a
    per-step scheduler (after each optimizer step; no gradients, so nothing moves but the schedule)."""
    rows = []
    for _ in range(n):
        rows.append([value for group in schedule.optimizer.param_groups for value in read(group)])
        schedule.optimizer.step()
        schedule.step()
    return rows


def old_lr_at(step: int, peak: float, warm: int, total: float, ratio: float) -> float:
    """models/lm.py's and models/seq2seq.py's lr_at before WarmupCosine (the same formula, written twice),
    by steps; total = inf: no known end."""
    if step < warm:
        return peak * (step + 1) / warm
    if not math.isfinite(total):
        return peak
    progress = min(max((step - warm) / max(1, total - warm), 0.0), 1.0)
    lo = peak * ratio
    return lo + 0.5 * (1.0 + math.cos(math.pi * progress)) * (peak - lo)


@pytest.mark.parametrize(("warm", "total"), [(10, 110), (0, 7), (50, 20), (3, 3), (100, 1000)])
def test_language_model_and_translator_keep_their_warmup_cosine(warm, total):
    lm = LanguageModel(vocab="abcd", n_layer=1, n_head=1, n_embd=8, block_size=8, learning_rate=1e-2,
                       warmup_steps=warm, min_lr_ratio=0.1)
    translator = Translator(src_vocab="abc", tgt_vocab="xyz", d_model=8, n_head=1, n_enc_layer=1, n_dec_layer=1,
                            learning_rate=2e-3, warmup_steps=warm, min_lr_ratio=0.05)
    for model, peak, ratio in ((lm, 1e-2, 0.1), (translator, 2e-3, 0.05)):
        rows = stepped(schedule_of(model, planned(total)), total + 20)  # 20 steps past the end: held
        for step, lrs in enumerate(rows):
            assert lrs == [pytest.approx(old_lr_at(step, peak, warm, total, ratio), rel=1e-12)] * len(lrs), step
    lm.hparams.lr_decay = "none"
    for step, lrs in enumerate(stepped(schedule_of(lm, planned(total)), total + 5)):
        assert lrs[0] == pytest.approx(old_lr_at(step, 1e-2, warm, math.inf, 0.1), rel=1e-12)


def test_a_time_budget_sets_the_translators_decay_but_not_the_language_models_when_max_steps_is_set(monkeypatch):
    """As before: the translator follows the clock whenever there is a max_time; the LM's lr_decay auto takes
    max_steps first."""
    from pytorch_lightning.callbacks import Timer

    trainer = planned(50, max_time={"seconds": 100})
    (timer,) = [c for c in trainer.callbacks if isinstance(c, Timer)]
    monkeypatch.setattr(timer, "time_elapsed", lambda stage="train": 25.0)
    translator = schedule_of(Translator(src_vocab="abc", tgt_vocab="xyz", d_model=8, n_head=1, warmup_steps=5,
                                        learning_rate=2e-3, min_lr_ratio=0.05), trainer)
    lo = 2e-3 * 0.05
    assert translator.lr_at(30) == pytest.approx(lo + 0.5 * (1 + math.cos(math.pi * 0.25)) * (2e-3 - lo), rel=1e-12)
    assert translator.lr_at(3) == pytest.approx(2e-3 * 4 / 5)
    lm = schedule_of(LanguageModel(vocab="ab", block_size=4, n_layer=1, n_head=1, n_embd=8, warmup_steps=5), trainer)
    assert lm.progress is None and lm.lr_at(30) == pytest.approx(old_lr_at(30, 1e-3, 5, 50, 0.1), rel=1e-12)


def test_a_decay_by_steps_or_by_time_needs_that_limit():
    lm = LanguageModel(vocab="ab", block_size=4, n_layer=1, n_head=1, n_embd=8, lr_decay="time")
    lm.trainer = planned(50)
    with pytest.raises(ValueError, match="lr_decay='time' needs the Trainer's"):
        lm.configure_optimizers()
    lm.hparams.lr_decay = "steps"
    lm.trainer = pl.Trainer(max_epochs=-1, max_time={"seconds": 10}, logger=False, enable_progress_bar=False)
    with pytest.raises(ValueError, match="lr_decay='steps' needs the Trainer's"):
        lm.configure_optimizers()


@pytest.mark.parametrize("total", [10, 37, 400])
def test_classifier_keeps_torchs_one_cycle_with_beta1_cycling(total):
    model = Classifier(width=4, feature_dim=8, lr=3e-3, weight_decay=1e-2, pct_start=0.25)
    ours = schedule_of(model, planned(total))
    reference = torch.optim.AdamW(weight_decay_groups(model.parameters(), 1e-2), lr=3e-3)
    torch_one_cycle = torch.optim.lr_scheduler.OneCycleLR(reference, max_lr=3e-3, total_steps=total, pct_start=0.25)
    assert [g["weight_decay"] for g in ours.optimizer.param_groups] == [1e-2, 0.0]

    def lr_and_beta1(group):
        return group["lr"], group["betas"][0]

    rows = zip(stepped(ours, total, lr_and_beta1), stepped(torch_one_cycle, total, lr_and_beta1), strict=True)
    for step, (mine, theirs) in enumerate(rows):
        assert mine == pytest.approx(theirs, rel=1e-12), step
    assert ours.lr_at(total + 100) == pytest.approx(3e-3 / 25 / 1e4)  # past the end: the floor, no error


@pytest.mark.parametrize("total", [1, 2, 3, 4, 7, 20, 101, 1000])
@pytest.mark.parametrize("warmup_frac", [0.05, 0.3])
def test_vae_keeps_its_onecycle_and_cosine_schedules(total, warmup_frac):
    """The VAE's schedules before WarmupCosine: OneCycleLR (no momentum cycling, floor lr / 25e3, each phase at
    least 1.5 steps, constant under 3 steps) and LambdaLR over the linear-warm-up cosine down to 0."""
    for name in ("onecycle", "cosine"):
        model = VAE(hidden=[16], lr=2e-3, schedule=name, warmup_frac=warmup_frac)
        ours = stepped(schedule_of(model, planned(total)), total)
        reference = torch.optim.AdamW(model.parameters(), lr=2e-3)
        if name == "cosine":
            warm = max(1, int(warmup_frac * total))
            old = torch.optim.lr_scheduler.LambdaLR(
                reference, lambda s: warmup_cosine(s, 1.0, warm, (s - warm) / max(1, total - warm)))  # noqa: B023
        elif total < 3:
            old = torch.optim.lr_scheduler.LambdaLR(reference, lambda s: 1.0)
        else:
            pct = min(max(warmup_frac, 1.5 / total), 1 - 1.5 / total)
            old = torch.optim.lr_scheduler.OneCycleLR(reference, max_lr=2e-3, total_steps=total, pct_start=pct,
                                                      anneal_strategy="cos", cycle_momentum=False, div_factor=25.0,
                                                      final_div_factor=1e3)
        for step, (mine, theirs) in enumerate(zip(ours, stepped(old, total), strict=True)):
            assert mine == pytest.approx(theirs, rel=1e-12), (name, step)


def test_the_baselines_clock_schedule_is_warmup_cosine():
    """The clock-driven warm-up + cosine formula a hand-written training loop used (the dates baseline before it
    became the decoder_only architecture) equals genlab.optim.warmup_cosine."""
    peak, warm, lo = 2e-3, 200, 1e-4
    for step, progress in [(0, 0.0), (199, 0.1), (200, 0.1), (900, 0.5), (1500, 1.0), (1600, 1.3)]:
        progress = min(1.0, progress)
        old = peak * (step + 1) / warm if step < warm else lo + 0.5 * (1 + math.cos(math.pi * progress)) * (peak - lo)
        assert warmup_cosine(step, peak, warm, progress, floor=lo) == pytest.approx(old, rel=1e-12)


def test_only_the_step_is_saved_and_a_resumed_schedule_takes_the_new_plan():
    """A schedule state (torch's OneCycleLR's too, as older checkpoints hold) restores the step, never the plan;
    the rates of the restored step replace the optimizer's."""
    param = torch.nn.Parameter(torch.zeros(2, 2))
    old_opt = torch.optim.AdamW([param], lr=1e-2)
    old = torch.optim.lr_scheduler.OneCycleLR(old_opt, max_lr=1e-2, total_steps=20, pct_start=0.25)
    stepped(old, 20)
    assert old.last_epoch == 20
    opt = torch.optim.AdamW([param], lr=1e-2)
    longer = one_cycle(opt, 40, 0.25)
    opt.load_state_dict(old_opt.state_dict())  # as Lightning restores: the optimizer first, then the schedule
    longer.load_state_dict(old.state_dict())
    assert longer.state_dict() == {"last_epoch": 20}
    assert opt.param_groups[0]["lr"] == pytest.approx(longer.lr_at(20)) and longer.lr_at(20) > 1e-3  # mid-decay
    assert opt.param_groups[0]["betas"][0] < 0.95
    rows = stepped(longer, 60)  # 40 past the new end: the floor holds, no "Tried to step" error
    assert rows[-1] == [pytest.approx(1e-2 / 25 / 1e4)]
    with pytest.raises(ValueError, match="warmup must be"):
        WarmupCosine(opt, 10, 2, warmup="exp")


@pytest.mark.usefixtures("data_root")
@pytest.mark.parametrize("family", ["vae", "classifier"])
def test_a_finished_run_trains_longer_with_its_schedule_replanned(family, repo):
    """Issue 26: `--trainer.max_epochs 2 --ckpt_path last` after a 1-epoch run ended in OneCycleLR's
    "Tried to step N times"; it trains the second epoch, the decay spread over both."""
    from genlab.cli import main
    from tiny_configs import MODELS

    config, _, overrides = MODELS[family]
    args = ["fit", "-c", str(repo / config), *overrides, "--data.init_args.batch_size", "32",  # 16 steps an epoch
            "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", "runs/longer"]
    assert main(args) == 0
    steps = torch.load("runs/longer/checkpoints/last.ckpt", weights_only=True)["global_step"]
    assert main([*args, "--trainer.max_epochs", "2", "--ckpt_path", "last"]) == 0
    second = torch.load("runs/longer/checkpoints/last.ckpt", weights_only=True)
    assert second["global_step"] == 2 * steps == 32 and second["lr_schedulers"] == [{"last_epoch": 2 * steps}]
    peak = second["hyper_parameters"]["lr"]
    floor = peak / 25 / (1e3 if family == "vae" else 1e4)
    assert second["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(floor)
