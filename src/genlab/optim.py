"""Optimizers and the learning-rate schedule the models share.

MuonWithAdamW runs torch.optim.Muon on hidden matrices and AdamW on the rest as one optimizer. warmup_cosine is
the one warmup + cosine schedule: the language model follows it by steps or by the wall clock, the VAE's
"cosine" schedule is the same curve by steps (make_scheduler).
"""

from __future__ import annotations

import math

import torch


def warmup_cosine(step: int, peak: float, warmup_steps: int, progress: float, floor: float = 0.0) -> float:
    """Linear warmup to `peak` over `warmup_steps`, then cosine decay from `peak` to `floor` as `progress`
    (the fraction of the decay done, clamped to [0, 1]) goes from 0 to 1."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = min(max(progress, 0.0), 1.0)
    return floor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (peak - floor)


def make_scheduler(opt, schedule: str, lr: float, total_steps: int, warmup_frac: float):
    """A per-step learning-rate scheduler: "onecycle" (torch's OneCycleLR) or "cosine" (warmup_cosine down to 0)."""
    total_steps = max(1, total_steps)
    if schedule == "onecycle":
        if total_steps < 3:  # too short for a warm-up and a decay: keep the learning rate constant
            return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
        # OneCycleLR divides by the length of each phase: give each at least one step on short runs
        pct_start = min(max(warmup_frac, 1.5 / total_steps), 1 - 1.5 / total_steps)
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=lr, total_steps=total_steps, pct_start=pct_start, anneal_strategy="cos",
            cycle_momentum=False, div_factor=25.0, final_div_factor=1e3,
        )
    if schedule == "cosine":
        warm = max(1, int(warmup_frac * total_steps))

        def factor(step: int) -> float:
            return warmup_cosine(step, 1.0, warm, (step - warm) / max(1, total_steps - warm))

        return torch.optim.lr_scheduler.LambdaLR(opt, factor)
    raise ValueError(f"unknown schedule {schedule!r}")


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
