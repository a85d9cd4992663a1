"""The learning-rate schedule, the weight-decay groups and the optimizers every genlab model shares.

WarmupCosine is the one schedule: a warm-up to the peak, then a cosine decay to a floor, per optimizer step (or,
under a wall-clock budget, by the share of the budget spent). Models build it in configure_optimizers from the
Trainer's plan (`planned_steps`, `decay_plan`); it holds the floor past the planned end and checkpoints only its
step count, so a run resumed with more epochs, steps or time decays over its new length instead of failing.
`one_cycle` is torch's OneCycleLR (cosine annealing) on it; `make_scheduler` names the VAE's two schedules.
weight_decay_groups puts matrices under weight decay and biases and norms outside it. MuonWithAdamW runs
torch.optim.Muon on hidden matrices and AdamW on the rest as one optimizer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch


def warmup_cosine(step: int, peak: float, warmup_steps: int, progress: float, floor: float = 0.0) -> float:
    """Linear warmup to `peak` over `warmup_steps`, then cosine decay from `peak` to `floor` as `progress`
    (the fraction of the decay done, clamped to [0, 1]) goes from 0 to 1."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    return anneal(peak, floor, progress)


def anneal(start: float, end: float, progress: float) -> float:
    """From `start` to `end` along a half cosine as `progress` goes from 0 to 1 (clamped): OneCycleLR's formula."""
    progress = min(max(progress, 0.0), 1.0)
    return end + (start - end) / 2.0 * (math.cos(math.pi * progress) + 1)


class WarmupCosine(torch.optim.lr_scheduler.LRScheduler):
    """Per optimizer step: a warm-up to each parameter group's learning rate (the peak), then a cosine decay to
    `floor` x peak, held after the planned end.

    warmup "linear": peak * (step + 1) / warmup_steps for the first warmup_steps steps; the decay then reaches
        the floor at step total_steps (or when `progress()` reaches 1). A total_steps of None (no known end)
        keeps the peak after the warm-up.
    warmup "cosine": torch's OneCycleLR with anneal_strategy="cos", step for step: from `start` x peak up to the
        peak along a half cosine, reached at step warmup_steps - 1, then down to the floor at step total_steps - 1;
        `momentum=(base, max)` moves Adam's beta1 (or SGD's momentum) the other way, as its cycle_momentum does.
        Each phase gets at least 1.5 steps, and a plan under 3 steps (or with no known end) keeps the peak.

    state_dict() holds the step count only: the plan is the one configure_optimizers makes from the Trainer, so a
    resumed run with a longer budget re-plans, and a checkpoint of torch's OneCycleLR or LambdaLR resumes here.
    """

    def __init__(self, optimizer, total_steps: int | None, warmup_steps: float, floor: float = 0.0,
                 warmup: str = "linear", start: float = 1 / 25, momentum: tuple[float, float] | None = None,
                 progress: Callable[[], float] | None = None):
        if warmup not in ("linear", "cosine"):
            raise ValueError(f"warmup must be 'linear' or 'cosine', got {warmup!r}")
        self.total_steps, self.warmup_steps, self.floor, self.warmup = total_steps, warmup_steps, floor, warmup
        self.start, self.momentum, self.progress = start, momentum, progress
        super().__init__(optimizer)

    def lr_at(self, step: int, group: int = 0) -> float:
        """The learning rate of parameter group `group` at optimizer step `step` (0 = the first)."""
        return self._at(step, self.base_lrs[group])[0]

    def _at(self, step: int, peak: float) -> tuple[float, float | None]:
        """(learning rate, momentum or None for "leave it") at `step` for a group whose peak is `peak`."""
        total, warm, floor = self.total_steps, self.warmup_steps, peak * self.floor
        if self.warmup == "linear":
            if step < warm or (total is None and self.progress is None):  # warming up, or no known end
                return warmup_cosine(step, peak, warm, 0.0), None
            done = self.progress() if self.progress is not None else (step - warm) / max(1, total - warm)
            return warmup_cosine(step, peak, warm, done, floor), None
        if total is None or total < 3:  # too short for a warm-up and a decay
            return peak, None
        top = min(max(warm, 1.5), total - 1.5) - 1  # the step at the peak
        low, high = self.momentum or (None, None)
        cycle = self.momentum is not None
        if step <= top:
            pct = step / top
            return anneal(peak * self.start, peak, pct), (anneal(high, low, pct) if cycle else None)
        pct = self.progress() if self.progress is not None else (step - top) / (total - 1 - top)
        return anneal(peak, floor, pct), (anneal(low, high, pct) if cycle else None)

    def _rates(self) -> list[float]:
        """Each group's rate at the current step; sets its momentum on the way."""
        values = [self._at(self.last_epoch, peak) for peak in self.base_lrs]
        for group, (_, m) in zip(self.optimizer.param_groups, values, strict=True):
            if m is not None:
                if "betas" in group:
                    group["betas"] = (m, *group["betas"][1:])
                else:
                    group["momentum"] = m
        return [lr for lr, _ in values]

    def get_lr(self) -> list[float]:
        return self._rates()

    def state_dict(self) -> dict:
        return {"last_epoch": self.last_epoch}

    def load_state_dict(self, state_dict: dict) -> None:
        """Resume at the saved step under this plan (its rates replace those restored with the optimizer)."""
        self.last_epoch = int(state_dict["last_epoch"])
        self._last_lr = self._rates()
        for group, lr in zip(self.optimizer.param_groups, self._last_lr, strict=True):
            group["lr"] = lr


def one_cycle(optimizer, total_steps: int | None, pct_start: float, final_div_factor: float = 1e4,
              cycle_momentum: bool = True) -> WarmupCosine:
    """torch's OneCycleLR(max_lr=the groups' rates, pct_start, anneal_strategy="cos", div_factor=25,
    final_div_factor, cycle_momentum with beta1 between 0.85 and 0.95) as a WarmupCosine."""
    warm = pct_start * total_steps if total_steps else 0.0
    return WarmupCosine(optimizer, total_steps, warm, floor=1 / 25 / final_div_factor, warmup="cosine",
                        start=1 / 25, momentum=(0.85, 0.95) if cycle_momentum else None)


def make_scheduler(opt, schedule: str, lr: float, total_steps: int, warmup_frac: float) -> WarmupCosine:
    """The VAE's schedules at peak `lr`: "onecycle" (one_cycle without momentum cycling, down to lr / 25e3)
    or "cosine" (a linear warm-up over max(1, warmup_frac x total_steps) steps, then cosine down to 0)."""
    total_steps = max(1, total_steps)
    for group in opt.param_groups:
        group["lr"] = lr
    if schedule == "onecycle":
        return one_cycle(opt, total_steps, warmup_frac, final_div_factor=1e3, cycle_momentum=False)
    if schedule == "cosine":
        return WarmupCosine(opt, total_steps, max(1, int(warmup_frac * total_steps)))
    raise ValueError(f"unknown schedule {schedule!r}")


def planned_steps(trainer) -> int | None:
    """The Trainer's estimate of the optimizer steps of the whole run (None: no step limit, e.g. a time budget)."""
    total = trainer.estimated_stepping_batches
    return int(total) if math.isfinite(total) else None


def decay_plan(trainer, mode: str = "auto", clock_first: bool = False):
    """Where the decay of a linear-warm-up WarmupCosine ends, as (total_steps, progress) for its arguments.

    mode "steps": at the Trainer's estimated total steps; "time": when its max_time is spent (progress reads
    Lightning's Timer through its public accessors); "none": no decay; "auto": max_steps if set, else max_time,
    else the estimated total (`clock_first`: max_time before max_steps). "steps" or "time" without that limit
    is a ValueError.
    """
    from pytorch_lightning.callbacks import Timer  # here, so that importing genlab.optim needs no Lightning

    if mode == "none":
        return None, None
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    clock = timer is not None and timer.time_remaining("train") is not None
    by_steps = mode == "steps" or (mode == "auto" and not (clock and clock_first)
                                   and (trainer.max_steps or -1) > 0)
    if not by_steps and mode in ("time", "auto") and clock:
        def progress() -> float:
            elapsed = timer.time_elapsed("train")
            return elapsed / max(1e-9, elapsed + timer.time_remaining("train"))

        return None, progress
    total = planned_steps(trainer) if mode != "time" else None
    if mode in ("steps", "time") and total is None:
        raise ValueError(f"lr_decay={mode!r} needs the Trainer's max_steps/max_epochs (steps) or max_time (time)")
    return total, None


def restore_schedule_step(checkpoint: dict) -> None:
    """For a model's on_load_checkpoint: a checkpoint with an optimizer state but no schedule state (the language
    model and the translator set their rates by hand before WarmupCosine; a classifier run too short for a
    schedule) resumes its schedule at the checkpoint's step rather than at the start of the warm-up."""
    if checkpoint.get("optimizer_states") and not checkpoint.get("lr_schedulers"):
        checkpoint["lr_schedulers"] = [{"last_epoch": int(checkpoint.get("global_step", 0))}]


def weight_decay_groups(params: Iterable[torch.nn.Parameter], weight_decay: float, exclude=()) -> list[dict]:
    """Two optimizer groups, in parameter order: the matrices (Linear and conv weights, embeddings) under
    `weight_decay`, the vectors (biases, norms) without; frozen parameters and those in `exclude` left out."""
    skip = {id(p) for p in exclude}
    params = [p for p in params if p.requires_grad and id(p) not in skip]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


class MuonWithAdamW(torch.optim.Optimizer):
    """torch.optim.Muon on the blocks' weight matrices, AdamW on the rest, stepped as one optimizer.

    Muon orthogonalises each matrix's momentum (Newton-Schulz), which trains small transformers in fewer steps;
    it is meant for hidden matrices only, so the embeddings (and the head tied to them), biases and norms stay
    with AdamW. One Optimizer object, so Lightning's automatic optimization, gradient clipping, checkpoints and
    the shared learning-rate schedule work unchanged. `adjust_lr_fn="match_rms_adamw"` scales Muon's update to
    the size of AdamW's, so one learning rate and one weight decay serve both.
    """

    def __init__(self, muon_params: list, adamw_groups: list[dict], lr: float, betas: tuple[float, float],
                 weight_decay: float):
        self.muon = torch.optim.Muon(muon_params, lr=lr, weight_decay=weight_decay, adjust_lr_fn="match_rms_adamw")
        self.adamw = torch.optim.AdamW(adamw_groups, lr=lr, betas=betas)
        super().__init__([p for g in self.muon.param_groups + self.adamw.param_groups for p in g["params"]],
                         {"lr": lr})
        # the inner optimizers' own groups, so a learning rate set here is the one they use
        self.param_groups = self.muon.param_groups + self.adamw.param_groups

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.muon.step()
        self.adamw.step()
        return loss

    def state_dict(self) -> dict:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        if set(state_dict) != {"muon", "adamw"}:
            raise ValueError("this optimizer state is not MuonWithAdamW's (was the checkpoint trained with "
                             "optimizer: adamw?)")
        self.muon.load_state_dict(state_dict["muon"])
        self.adamw.load_state_dict(state_dict["adamw"])
        self.param_groups = self.muon.param_groups + self.adamw.param_groups
