"""The judge: a small CNN for 28x28 grayscale images whose penultimate layer gives FID/KID features.

Why a domain classifier instead of Inception-v3: Inception's features were learned on photographs, are
meaningless for 28x28 digits, and its weights are a download away that not every user can make. A CNN that
classifies MNIST at >= 99.4% (Fashion-MNIST >= 92%) knows what a digit looks like; its 128-d penultimate
activations play the role of Inception's pool3 features, and its softmax gives the class histogram, the
confident fraction and the Inception-Score analogue.

Train with `genlab fit -c configs/classifier_mnist.yaml` (or classifier_fashion_mnist.yaml), then ship the
weights with `python scripts/export_classifier.py --ckpt runs/classifier_mnist/checkpoints/best.ckpt
--dataset mnist`, which writes a plain state_dict (plus the architecture's arguments) and its SHA-256 next to
this file, in genlab/metrics/weights/.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_info
from torch import nn

from genlab.models.base import GenlabModule

DATASETS = ("mnist", "fashion_mnist")
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
WEIGHTS_FORMAT = "genlab-classifier-v1"


def retrain_command(dataset: str) -> str:
    """The exact commands that rebuild the shipped weights of `dataset` (named in every weights error)."""
    return (
        f"genlab fit -c configs/classifier_{dataset}.yaml && python scripts/export_classifier.py "
        f"--ckpt runs/classifier_{dataset}/checkpoints/best.ckpt --dataset {dataset}"
    )


def _conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    # No conv bias: batch norm's shift replaces it.
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class ClassifierNet(nn.Module):
    """Three conv blocks (28 -> 14 -> 7 -> 3 pixels), a 128-d feature layer, a linear classifier.

    ~240k parameters (under 1 MB as float32): small enough to ship, and ~7,000 images/s in evaluation on
    2 CPU cores, so features of 10,000 images take about a second and a half.
    """

    def __init__(self, width: int = 32, feature_dim: int = 128, dropout: float = 0.3, num_classes: int = 10):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            *_conv_block(1, w), nn.MaxPool2d(2),  # 28 -> 14
            *_conv_block(w, 2 * w), nn.MaxPool2d(2),  # 14 -> 7
            *_conv_block(2 * w, 4 * w), nn.MaxPool2d(2),  # 7 -> 3
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(4 * w * 9, feature_dim, bias=False),
            nn.BatchNorm1d(feature_dim),
            nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, num_classes)
        # channels_last convolutions run ~1.4x faster in training and ~2x in evaluation on CPU (oneDNN)
        self.to(memory_format=torch.channels_last)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations [B, feature_dim] of images x [B,1,28,28] in [0,1]."""
        return self.body(x.contiguous(memory_format=torch.channels_last))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return f, self.head(f)  # dropout is the identity in eval mode


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Translate each image by its own integer offset in [-max_shift, max_shift]^2 (zero fill), on tensors.

    Two gathers for the whole batch: no per-image Python loop, no PIL.
    """
    if max_shift <= 0:
        return x
    b, c, h, w = x.shape
    s = max_shift
    padded = F.pad(x, (s, s, s, s))
    dy, dx = torch.randint(0, 2 * s + 1, (2, b), generator=generator).to(x.device)
    rows = (torch.arange(h, device=x.device)[None, :] + dy[:, None])[:, None, :, None].expand(b, c, h, w + 2 * s)
    x = padded.gather(2, rows)  # [b, c, h, w + 2s]
    cols = (torch.arange(w, device=x.device)[None, :] + dx[:, None])[:, None, None, :].expand(b, c, h, w)
    return x.gather(3, cols)


class Classifier(GenlabModule):
    """LightningModule that trains ClassifierNet with light augmentation and a one-cycle learning rate.

    Augmentation on tensors inside training_step (random shifts of up to `max_shift` pixels, optional
    horizontal flips for Fashion-MNIST) keeps the data path a plain tensor slice.

    Args:
        dataset: "mnist" or "fashion_mnist" (recorded in the exported weights).
        width: channels of the first conv block (doubled per block).
        feature_dim: size of the penultimate layer (the FID feature size).
        dropout: dropout before the feature layer and before the classifier.
        lr: peak learning rate of the one-cycle schedule (AdamW).
        weight_decay: AdamW's decoupled weight decay.
        pct_start: fraction of the steps spent warming up.
        max_shift: largest random translation in pixels (0 disables).
        hflip: random horizontal flips (sensible for clothes, not for digits).
    """

    def __init__(
        self,
        dataset: str = "mnist",
        width: int = 32,
        feature_dim: int = 128,
        dropout: float = 0.3,
        lr: float = 3e-3,
        weight_decay: float = 1e-2,
        pct_start: float = 0.25,
        max_shift: int = 2,
        hflip: bool = False,
    ):
        super().__init__()
        if dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
        self.save_hyperparameters()
        self.net = ClassifierNet(width=width, feature_dim=feature_dim, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        x = random_shift(x, self.hparams.max_shift)
        if self.hparams.hflip:
            flip = torch.rand(x.shape[0], device=x.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x

    def on_train_epoch_start(self) -> None:
        self._epoch_t0, self._epoch_images = time.perf_counter(), 0

    def on_train_epoch_end(self) -> None:
        # wall time per epoch in the logs: the training budget (< 15 min on 2 CPU cores) is checked from these
        seconds = time.perf_counter() - self._epoch_t0
        self.log("train/epoch_seconds", seconds)
        self.log("train/images_per_second", self._epoch_images / max(seconds, 1e-9))
        val = {k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith("val/")}
        rank_zero_info(
            f"epoch {self.current_epoch}: {seconds:.1f} s (train + val), "
            f"{self._epoch_images / max(seconds, 1e-9):.0f} img/s, "
            + ", ".join(f"{k} {v:.4f}" for k, v in sorted(val.items()))
        )

    def training_step(self, batch, batch_idx):
        x, y = batch
        self._epoch_images = getattr(self, "_epoch_images", 0) + len(x)
        logits = self(self.augment(x))
        loss = F.cross_entropy(logits, y)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", (logits.argmax(1) == y).float().mean())
        return loss

    def _eval_step(self, batch, stage: str):
        x, y = batch
        logits = self(x)
        self.log(f"{stage}/loss", F.cross_entropy(logits, y), sync_dist=True, prog_bar=stage == "val")
        self.log(f"{stage}/acc", (logits.argmax(1) == y).float().mean(), sync_dist=True, prog_bar=stage == "val")

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def configure_optimizers(self):
        decay = [p for n, p in self.named_parameters() if p.ndim > 1]
        no_decay = [p for n, p in self.named_parameters() if p.ndim <= 1]  # BN and biases
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.hparams.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.hparams.lr,
        )
        total_steps = int(self.trainer.estimated_stepping_batches)
        if total_steps < 10:  # OneCycleLR's phases degenerate (division by zero) on a handful of steps
            return opt
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=self.hparams.lr,
            total_steps=total_steps,
            pct_start=self.hparams.pct_start,
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def arch_args(self) -> dict:
        return {k: self.hparams[k] for k in ("width", "feature_dim", "dropout")}


# --------------------------------------------------------------------------------------------------------
# Shipped weights: a plain dict of tensors and primitives, loadable with weights_only=True, hash-checked.


class ClassifierWeightsError(RuntimeError):
    """The shipped classifier weights are missing, corrupted or unreadable."""


def weights_path(dataset: str) -> Path:
    if dataset not in DATASETS:
        raise ValueError(f"no classifier for dataset {dataset!r}: choose one of {DATASETS}")
    return WEIGHTS_DIR / f"{dataset}_classifier.pt"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_classifier(
    dataset: str = "mnist", device: str | torch.device | None = None, path: str | Path | None = None
) -> ClassifierNet:
    """The shipped ClassifierNet for `dataset`, hash-verified, in eval mode on `device`.

    `path` overrides the shipped file (its hash is read from `<path>.sha256`).
    """
    path = Path(path) if path is not None else weights_path(dataset)
    fix = f"  fix: reinstall genlab, or retrain and export the weights with:\n    {retrain_command(dataset)}"
    hash_file = path.with_name(path.name + ".sha256")
    if not path.is_file():
        raise ClassifierWeightsError(f"classifier weights for {dataset!r} not found: {path}\n{fix}")
    if not hash_file.is_file():
        raise ClassifierWeightsError(f"hash file {hash_file} is missing, so {path} cannot be verified\n{fix}")
    expected = hash_file.read_text().split()[0].strip().lower() if hash_file.read_text().strip() else ""
    actual = sha256_of(path)
    if actual != expected:
        raise ClassifierWeightsError(
            f"classifier weights {path} are corrupted or were replaced: SHA-256 {actual} does not match "
            f"{expected or '(empty hash file)'} in {hash_file.name}\n{fix}"
        )
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or blob.get("format") != WEIGHTS_FORMAT:
            raise ValueError(f"not a {WEIGHTS_FORMAT} file")
        net = ClassifierNet(**blob["arch"])
        net.load_state_dict(blob["state_dict"])
    except Exception as err:
        raise ClassifierWeightsError(f"cannot load classifier weights {path} ({type(err).__name__}: {err})\n{fix}") from None
    if blob.get("dataset") != dataset:
        raise ClassifierWeightsError(f"{path} holds a classifier for {blob.get('dataset')!r}, not {dataset!r}\n{fix}")
    return net.eval().to(device or "cpu")


def export_weights(module: Classifier, path: str | Path, extra: dict | None = None) -> str:
    """Write module's network as a plain state_dict (+ architecture args, metadata) and `<path>.sha256`.

    Returns the SHA-256. Tensors are cloned to CPU float32 so the file does not depend on the device trained on.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "format": WEIGHTS_FORMAT,
        "dataset": module.hparams.dataset,
        "arch": module.arch_args(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in module.net.state_dict().items()},
        **(extra or {}),
    }
    torch.save(blob, path)
    digest = sha256_of(path)
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    return digest


@torch.no_grad()
def accuracy(net: ClassifierNet, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    device = next(net.parameters()).device
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += (net(x[i : i + batch_size].to(device)).argmax(1).cpu() == y[i : i + batch_size]).sum().item()
    return correct / len(x)


def export_main(argv: list[str] | None = None) -> int:
    """`python scripts/export_classifier.py --ckpt CKPT --dataset mnist [--out PATH]`.

    Loads a Classifier checkpoint, measures its accuracy on the full official test set, and writes the weights
    file and its .sha256 (default: the shipped location inside the package).
    """
    import argparse
    import json
    import time

    parser = argparse.ArgumentParser(
        prog="export_classifier", description="Export a trained Classifier checkpoint as genlab's shipped weights."
    )
    parser.add_argument("--ckpt", required=True, help="Classifier checkpoint, e.g. runs/classifier_mnist/checkpoints/best.ckpt")
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--out", default=None, help="weights file to write (default: the shipped one in the package)")
    parser.add_argument("--data-root", default=None, help="data folder (default $GENLAB_DATA_DIR, else ./data)")
    args = parser.parse_args(argv)

    from genlab.checkpoints import CheckpointError, load_module
    from genlab.data import load_images

    try:
        module = load_module(args.ckpt, expected=Classifier)
    except CheckpointError as err:
        print(f"export_classifier: {err}", flush=True)
        return 2
    if module.hparams.dataset != args.dataset:
        print(f"export_classifier: {args.ckpt} was trained on {module.hparams.dataset!r}, not {args.dataset!r}")
        return 2
    torch.set_grad_enabled(False)
    x, y = load_images(args.dataset, "test", args.data_root)
    t0 = time.perf_counter()
    acc = accuracy(module.net.eval(), x, y)
    ckpt = torch.load(args.ckpt, map_location="cpu", weights_only=True)
    out = Path(args.out) if args.out else weights_path(args.dataset)
    extra = {"test_accuracy": acc, "epoch": int(ckpt.get("epoch", -1)), "global_step": int(ckpt.get("global_step", -1))}
    digest = export_weights(module, out, extra)
    result = {"dataset": args.dataset, "test_accuracy": acc, "weights": str(out), "sha256": digest,
              "bytes": out.stat().st_size, "accuracy_seconds": round(time.perf_counter() - t0, 2), **extra}
    print(json.dumps(result))
    return 0
