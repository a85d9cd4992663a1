"""SampleQualityCallback: FID/KID/class coverage of a generative model's samples every N epochs, logged.

Why a callback: a GAN's losses say little about its samples, and mode collapse can set in and recover
between checkpoints; scoring a fixed-seed batch of samples at the end of validation tracks the model itself
(the same noise every time) and lets ModelCheckpoint monitor e.g. `quality/fid`.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_warn

from genlab.reporting import never_fatal
from genlab.runtime import eval_mode


class SampleQualityCallback(pl.Callback):
    """Every `every_n_epochs` epochs, draw `n_samples` with `pl_module.sample(n, seed)` and log their metrics.

    Logged keys: quality/fid, quality/fid_floor (real training images at the same sample size),
    quality/kid, quality/kid_std, quality/inception_score, quality/classes_covered, quality/min_class_share,
    quality/max_class_share, quality/class_kl_uniform, quality/confident_fraction.
    Warns "coverage collapsed: ..." when fewer than `collapse_classes` classes hold >= 5% of the samples.

    Runs at the end of validation (the module is in eval mode there and the values can be monitored); with
    no validation loop, at the end of the training epoch. Under DDP each rank draws its share of the samples
    (its own seed), the shares are gathered, and every rank scores the same gathered set, so the values cover
    all ranks' samples and can be monitored on every rank (`quality/n_samples` is the number scored).
    The result of the latest evaluation is kept in `last_result`. A failed evaluation is one warning, never the
    end of the run (a monitored `quality/*` key then waits for the next evaluation).

    Args:
        every_n_epochs: evaluate after epochs whose number (from 1) is a multiple of this.
        n_samples: samples per evaluation (FID is biased upwards at small n: compare with quality/fid_floor).
        dataset: judge ("mnist"/"fashion_mnist"); default the module's `dataset` hyper-parameter, then the
            datamodule's `dataset_name`, then "mnist".
        seed: sampling seed, the same every evaluation.
        value_range: range of the module's samples ((0, 1) by genlab's contract).
        collapse_classes: warn when fewer classes than this hold >= 5% of the samples.
        kid_subsets: KID's random subsets (of min(1000, n_samples) samples each).
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        n_samples: int = 2000,
        dataset: str | None = None,
        seed: int = 0,
        value_range: tuple[float, float] = (0, 1),
        collapse_classes: int = 8,
        kid_subsets: int = 100,
    ):
        super().__init__()
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        if n_samples < 2:
            raise ValueError(f"n_samples must be >= 2, got {n_samples}")
        self.every_n_epochs, self.n_samples, self.dataset = every_n_epochs, n_samples, dataset
        self.seed, self.value_range, self.collapse_classes = seed, tuple(value_range), collapse_classes
        self.kid_subsets = kid_subsets
        self.last_result: dict | None = None
        self._judges: dict = {}
        self._done_epoch = -1

    def _dataset(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> str:
        if self.dataset:
            return self.dataset
        hp = dict(getattr(pl_module, "hparams", {}) or {})
        if hp.get("dataset"):
            return hp["dataset"]
        dm = getattr(trainer, "datamodule", None)
        return getattr(dm, "dataset_name", None) or "mnist"

    def _due(self, trainer: pl.Trainer) -> bool:
        return (
            not trainer.sanity_checking
            and self._done_epoch != trainer.current_epoch
            and (trainer.current_epoch + 1) % self.every_n_epochs == 0
        )

    @torch.no_grad()
    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict:
        from genlab.metrics.quality import SampleQuality, draw_samples

        dataset = self._dataset(trainer, pl_module)
        key = (dataset, str(pl_module.device))
        if key not in self._judges:
            self._judges[key] = SampleQuality(dataset, device=pl_module.device, kid_subsets=self.kid_subsets)
        world, rank = trainer.world_size, trainer.global_rank
        share = -(-self.n_samples // world)  # ceil: every rank draws as many, so the gather is rectangular
        images = draw_samples(pl_module, share, self.seed + 7919 * rank)
        if world > 1:
            images = pl_module.all_gather(images.to(pl_module.device)).flatten(0, 1).cpu()
        images = images[: self.n_samples]
        result = self._judges[key].evaluate(images, self.value_range)
        result["n_samples"] = len(images)
        self._done_epoch = trainer.current_epoch
        self.last_result = result
        for name in ("fid", "fid_floor", "kid", "kid_std", "inception_score", "classes_covered", "min_class_share",
                     "max_class_share", "class_kl_uniform", "confident_fraction", "n_samples"):
            pl_module.log(f"quality/{name}", float(result[name]), on_step=False, on_epoch=True)
        if result["classes_covered"] < self.collapse_classes:
            shares = ", ".join(f"{i}:{s:.2f}" for i, s in enumerate(result["class_shares"]))
            rank_zero_warn(
                f"coverage collapsed: only {result['classes_covered']} of 10 classes hold >= 5% of "
                f"{self.n_samples} samples at epoch {trainer.current_epoch} (class shares {shares}; "
                f"fid {result['fid']:.2f}, floor {result['fid_floor']:.2f})"
            )
        return result

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "fit" and self._due(trainer):
            with never_fatal(self, "sample quality scores"):
                self.evaluate(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._due(trainer):  # validation already did it (it runs before this hook) or not due
            return
        with eval_mode(pl_module), never_fatal(self, "sample quality scores"):
            self.evaluate(trainer, pl_module)
