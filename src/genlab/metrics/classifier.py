"""The judge's shipped weights: a plain state_dict of genlab.nets.classifier.ClassifierNet, hash-checked.

Why a domain classifier instead of Inception-v3: Inception's features were learned on photographs, are
meaningless for 28x28 digits, and its weights are a download away that not every user can make. A CNN that
classifies MNIST (or Fashion-MNIST) well knows what a digit looks like; its 128-d penultimate activations play
the role of Inception's pool3 features, and its softmax gives the class histogram, the confident fraction and
the Inception-Score analogue. The weights are trained by genlab.models.classifier.Classifier and written here by
`genlab export-classifier` (genlab.tools.export_classifier), in genlab/metrics/weights/.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from genlab.errors import GenlabError
from genlab.nets.classifier import ClassifierNet

__all__ = ["DATASETS", "ClassifierNet", "ClassifierWeightsError", "accuracy", "export_weights", "load_classifier",
           "retrain_command", "sha256_of", "weights_path"]

DATASETS = ("mnist", "fashion_mnist")
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
WEIGHTS_FORMAT = "genlab-classifier-v1"


def retrain_command(dataset: str) -> str:
    """The exact commands that rebuild the shipped weights of `dataset` (named in every weights error)."""
    return (
        f"genlab fit -c configs/classifier_{dataset}.yaml && genlab export-classifier "
        f"--ckpt runs/classifier_{dataset}/checkpoints/best.ckpt --dataset {dataset}"
    )


class ClassifierWeightsError(GenlabError, RuntimeError):
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


def export_weights(module, path: str | Path, extra: dict | None = None) -> str:
    """Write a Classifier module's network as a plain state_dict (+ architecture args, metadata) and `<path>.sha256`.

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
