"""Sample-quality metrics on the features of genlab's own MNIST / Fashion-MNIST classifier.

What is measured, and why each number:
- FID: Frechet distance between Gaussian fits of the penultimate-layer features of the samples and of the
  10,000 official test images. Sensitive to both quality and diversity; biased upwards for small samples, so
  every FID comes with `fid_floor`, the FID of the same number of *real training* images against the test set.
- KID: unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets
  (mean and std). Unbiased, so usable on small samples; ~0 for real-vs-real.
- Inception-Score analogue: exp(E_x KL(p(y|x) || p(y))) with the classifier's softmax: high when each sample
  is classified confidently and the classes are balanced (at most 10 for 10 classes).
- Class coverage: histogram of predicted classes, its KL from uniform, and how many classes hold >= 5% of the
  samples (mode collapse shows up here first).
- Confident fraction: share of samples whose top class probability is >= 0.9 (blurry or malformed samples
  are not).

Images go in as float tensors [N,1,28,28] (or [N,28,28]) in [0,1] or [-1,1], declared by `value_range` and
checked. Real-set features are computed once per process and cached.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import torch

from genlab.metrics.classifier import DATASETS, load_classifier, sha256_of, weights_path

FLOOR_SIZE = 10_000  # training images in the real-data floor
FLOOR_SEED = 12345  # fixes *which* training images: randperm(60000, seed)[:FLOOR_SIZE]
COVERAGE_THRESHOLD = 0.05  # a class is "covered" when it holds at least this share of the samples
CONFIDENT_THRESHOLD = 0.9  # a sample is "confident" when its top class probability is at least this
RANGE_TOLERANCE = 1e-4  # float round-off allowed outside the declared value range (then clamped)
VALUE_RANGES = ((0.0, 1.0), (-1.0, 1.0))


# ---------------------------------------------------------------------------------------------- inputs


def to_unit_range(images, value_range=(0, 1)) -> torch.Tensor:
    """Check `images` against the declared `value_range` and return float32 [N,1,28,28] in [0,1].

    Raises ValueError for another range, a wrong shape, non-float or non-finite values, or values outside
    the declared range (with a hint when they look like [-1,1] or [0,255] images).
    """
    try:
        lo_decl, hi_decl = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(f"value_range must be (0, 1) or (-1, 1), got {value_range!r}") from None
    if (lo_decl, hi_decl) not in VALUE_RANGES:
        raise ValueError(f"value_range must be (0, 1) or (-1, 1), got {value_range!r}")
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images must be a tensor or numpy array, got {type(images).__name__}")
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if images.ndim != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise ValueError(f"images must have shape [N, 1, 28, 28] or [N, 28, 28], got {list(images.shape)}")
    if len(images) == 0:
        raise ValueError("no images given (N = 0)")
    if not images.is_floating_point():
        raise ValueError(
            f"images must be floating point in {value_range} (value_range), got dtype {images.dtype}; "
            "for uint8 pixels use images.float() / 255"
        )
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or infinite values")
    lo, hi = images.min().item(), images.max().item()
    if lo < lo_decl - RANGE_TOLERANCE or hi > hi_decl + RANGE_TOLERANCE:
        hint = ""
        if (lo_decl, hi_decl) == (0.0, 1.0) and lo >= -1 - RANGE_TOLERANCE and hi <= 1 + RANGE_TOLERANCE:
            hint = "; they look like tanh outputs: pass value_range=(-1, 1)"
        elif hi > 2:
            hint = "; they look like 0..255 pixels: divide by 255 and pass value_range=(0, 1)"
        raise ValueError(
            f"images must lie in [{lo_decl:g}, {hi_decl:g}] as declared by value_range={value_range!r}, "
            f"but they span [{lo:.4g}, {hi:.4g}]{hint}"
        )
    images = images.float().clamp(lo_decl, hi_decl)
    if lo_decl == -1.0:
        images = (images + 1) / 2
    return images


# ---------------------------------------------------------------------------------------------- metrics


def gaussian_fit(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(features, dtype=np.float64)
    if len(f) < 2:
        raise ValueError(f"a Gaussian fit needs at least 2 samples, got {len(f)}")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), robust to round-off.

    (S1 S2)^(1/2) by scipy.linalg.sqrtm. Near-singular covariances (e.g. fewer samples than feature
    dimensions, or collapsed samples) can make it non-finite: then eps is added to both diagonals. Round-off
    leaves tiny imaginary parts: they are dropped when small against the trace; if they are not small, the
    trace of the square root is computed instead from the eigenvalues of the symmetric PSD matrix
    S1^(1/2) S2 S1^(1/2), which has the same trace and is real by construction.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sqrtm warns on singular input; handled below
        covmean = scipy.linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():
            offset = np.eye(len(s1)) * eps
            covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    scale = max(np.trace(s1) + np.trace(s2), 1e-12)
    if np.iscomplexobj(covmean):
        if np.abs(covmean.imag).max() > 1e-3 * scale or not np.isfinite(covmean).all():
            tr_covmean = _trace_sqrt_product(s1, s2)
        else:
            tr_covmean = float(np.trace(covmean.real))
    else:
        tr_covmean = float(np.trace(covmean))
    if not np.isfinite(tr_covmean):
        tr_covmean = _trace_sqrt_product(s1, s2)
    fid = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)
    return max(fid, 0.0)  # round-off can give -1e-12 for identical sets


def _trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    w1, v1 = np.linalg.eigh(s1)
    root1 = (v1 * np.sqrt(np.clip(w1, 0, None))) @ v1.T
    w = np.linalg.eigvalsh(root1 @ s2 @ root1)
    return float(np.sqrt(np.clip(w, 0, None)).sum())


def fid_from_features(f1, f2) -> float:
    return frechet_distance(*gaussian_fit(f1), *gaussian_fit(f2))


def _poly_kernel_sums(a: torch.Tensor, b: torch.Tensor, same: bool) -> torch.Tensor:
    """Sum of k(a_i, b_j) = (a_i.b_j / d + 1)^3 over all pairs (i != j when `same`), accumulated in float64.

    The kernel is evaluated in float32 (faster on a CPU; its rounding error per entry is orders of magnitude
    below KID's subset spread) and summed in float64.
    """
    k = (a @ b.T).div_(a.shape[1]).add_(1)
    k = k * k * k
    total = k.sum(dtype=torch.float64)
    return total - k.diagonal().sum(dtype=torch.float64) if same else total


def kid_from_features(f1, f2, n_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD^2, cubic polynomial kernel, mean and std over random subsets.

    Each subset draws min(subset_size, len(f1), len(f2)) rows of each set without replacement (fixed seed).
    """
    x_all = torch.as_tensor(np.asarray(f1), dtype=torch.float32)
    y_all = torch.as_tensor(np.asarray(f2), dtype=torch.float32)
    m = min(subset_size, len(x_all), len(y_all))
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(x_all)} and {len(y_all)}")
    gen = torch.Generator().manual_seed(seed)
    scores = torch.empty(n_subsets, dtype=torch.float64)
    for i in range(n_subsets):
        x = x_all[torch.randperm(len(x_all), generator=gen)[:m]]
        y = y_all[torch.randperm(len(y_all), generator=gen)[:m]]
        scores[i] = (
            (_poly_kernel_sums(x, x, True) + _poly_kernel_sums(y, y, True)) / (m * (m - 1))
            - 2 * _poly_kernel_sums(x, y, False) / (m * m)
        )
    return float(scores.mean()), float(scores.std(unbiased=False))


def inception_score(probs) -> float:
    """exp(mean_x KL(p(y|x) || p(y))) over the whole set (no splits); between 1 and the number of classes."""
    p = torch.as_tensor(np.asarray(probs), dtype=torch.float64).clamp_min(1e-12)
    py = p.mean(0, keepdim=True)
    kl = (p * (p.log() - py.log())).sum(1)
    return float(kl.mean().exp())


def class_coverage(probs, threshold: float = COVERAGE_THRESHOLD) -> dict:
    """Predicted-class histogram: shares, KL(shares || uniform), classes holding >= threshold, min/max share."""
    p = torch.as_tensor(np.asarray(probs))
    k = p.shape[1]
    shares = torch.bincount(p.argmax(1), minlength=k).double() / len(p)
    nz = shares[shares > 0]
    return {
        "classes_covered": int((shares >= threshold).sum()),
        "min_class_share": float(shares.min()),
        "max_class_share": float(shares.max()),
        "class_kl_uniform": float((nz * (nz * k).log()).sum()),
        "class_shares": [round(float(s), 6) for s in shares],
    }


def confident_fraction(probs, threshold: float = CONFIDENT_THRESHOLD) -> float:
    p = torch.as_tensor(np.asarray(probs))
    return float((p.max(1).values >= threshold).double().mean())


# ---------------------------------------------------------------------------------------------- evaluator


@dataclass
class FeatureSet:
    """Penultimate features and softmax probabilities of one image set (float64, CPU)."""

    features: np.ndarray
    probs: np.ndarray
    labels: np.ndarray | None = None
    _fit: tuple | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.features)

    def gaussian(self) -> tuple[np.ndarray, np.ndarray]:
        if self._fit is None:
            self._fit = gaussian_fit(self.features)
        return self._fit

    def head(self, n: int) -> FeatureSet:
        if n >= len(self):
            return self
        labels = None if self.labels is None else self.labels[:n]
        return FeatureSet(self.features[:n], self.probs[:n], labels)


# Real-set features, shared by every SampleQuality in the process: key (dataset, weights sha256, split, root).
_REAL_CACHE: dict[tuple, FeatureSet] = {}


def floor_indices(n_train: int, size: int = FLOOR_SIZE) -> torch.Tensor:
    """The fixed training images of the real-data floor: randperm(n_train, seed=FLOOR_SEED)[:size]."""
    return torch.randperm(n_train, generator=torch.Generator().manual_seed(FLOOR_SEED))[:size]


class SampleQuality:
    """Scores image samples against the real test set with the shipped classifier of `dataset`.

    >>> sq = SampleQuality("mnist")
    >>> sq.evaluate(model.sample(10_000, seed=0))          # images in [0, 1]
    >>> sq.evaluate(tanh_images, value_range=(-1, 1))
    >>> sq.floor()                                          # 10k real training images vs the test set

    Args:
        dataset: "mnist" or "fashion_mnist": picks the classifier and the real data.
        device: where the classifier runs ("cpu", "cuda", a torch.device; default CPU).
        root: data folder (default $GENLAB_DATA_DIR, else ./data).
        kid_subsets, kid_subset_size: KID's subset count and size.
        batch_size: images per classifier forward pass.
        weights: a weights file other than the shipped one (tests).
    """

    def __init__(
        self,
        dataset: str = "mnist",
        device: str | torch.device | None = None,
        root: str | None = None,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        batch_size: int = 1000,
        weights: str | None = None,
    ):
        if dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
        self.dataset, self.root = dataset, root
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.kid_subsets, self.kid_subset_size, self.batch_size = kid_subsets, kid_subset_size, batch_size
        self.net = load_classifier(dataset, self.device, path=weights)
        self._weights_id = sha256_of(weights_path(dataset) if weights is None else weights)
        self._floor_cache: dict[int, dict] = {}

    # -- features

    @torch.no_grad()
    def features(self, images, value_range=(0, 1)) -> FeatureSet:
        """Penultimate features and class probabilities of `images` (checked against `value_range`)."""
        x = to_unit_range(images, value_range)
        feats, probs = [], []
        for i in range(0, len(x), self.batch_size):
            f, logits = self.net.features_and_logits(x[i : i + self.batch_size].to(self.device))
            feats.append(f.double().cpu())
            probs.append(torch.softmax(logits.double(), 1).cpu())
        return FeatureSet(torch.cat(feats).numpy(), torch.cat(probs).numpy())

    def real(self, split: str) -> FeatureSet:
        """Features of the real "test" set (all 10,000) or the "floor" training subset (cached per process)."""
        from genlab.data import data_root

        key = (self.dataset, self._weights_id, split, str(data_root(self.root).resolve()))
        if key not in _REAL_CACHE:
            from genlab.data import load_images

            if split == "test":
                x, y = load_images(self.dataset, "test", self.root)
            elif split == "floor":
                x, y = load_images(self.dataset, "train", self.root)
                idx = floor_indices(len(x))
                x, y = x[idx], y[idx]
            else:
                raise ValueError(f"unknown real split {split!r}: 'test' or 'floor'")
            fs = self.features(x)
            fs.labels = y.numpy()
            _REAL_CACHE[key] = fs
        return _REAL_CACHE[key]

    # -- scores

    def score_features(self, fs: FeatureSet, with_floor: bool = True) -> dict:
        """All metrics of a FeatureSet against the test set (and the floor at the same sample size)."""
        ref = self.real("test")
        kid, kid_std = kid_from_features(fs.features, ref.features, self.kid_subsets, self.kid_subset_size)
        out = {
            "fid": frechet_distance(*fs.gaussian(), *ref.gaussian()),
            "fid_floor": self.fid_floor(len(fs)) if with_floor else math.nan,
            "kid": kid,
            "kid_std": kid_std,
            "inception_score": inception_score(fs.probs),
            **class_coverage(fs.probs),
            "confident_fraction": confident_fraction(fs.probs),
        }
        shares = out.pop("class_shares")
        out["class_shares"] = shares  # keep the long list last
        out["n"] = len(fs)
        out["dataset"] = self.dataset
        return out

    def evaluate(self, images, value_range=(0, 1)) -> dict:
        """Metrics of `images` against the 10,000 test images; `fid_floor` is the FID of as many real training
        images (at most 10,000) against the same test set, so the two are comparable."""
        return self.score_features(self.features(images, value_range))

    def fid_floor(self, n: int = FLOOR_SIZE) -> float:
        n = min(n, FLOOR_SIZE)
        if n not in self._floor_cache:
            sub = self.real("floor").head(n)
            self._floor_cache[n] = frechet_distance(*sub.gaussian(), *self.real("test").gaussian())
        return self._floor_cache[n]

    def floor(self, n: int = FLOOR_SIZE) -> dict:
        """The real-data floor: the metrics of n (<= 10,000) fixed training images against the test set,
        plus the classifier's accuracy on the full test set."""
        sub = self.real("floor").head(min(n, FLOOR_SIZE))
        out = self.score_features(sub, with_floor=False)
        out["fid_floor"] = out["fid"]
        test = self.real("test")
        out["classifier_test_accuracy"] = float((test.probs.argmax(1) == test.labels).mean())
        return out


SAMPLE_CHUNK = 1000
SEED_STRIDE = 1_000_003  # chunk i of a run with seed s is drawn with seed s * SEED_STRIDE + i


def draw_samples(model, n: int, seed: int, chunk: int = SAMPLE_CHUNK):
    """n samples from model.sample in chunks (bounded memory), each chunk with its own derived seed."""
    parts = []
    for i, start in enumerate(range(0, n, chunk)):
        k = min(chunk, n - start)
        x = model.sample(k, seed=seed * SEED_STRIDE + i)
        if not isinstance(x, torch.Tensor) or len(x) != k:
            raise ValueError(f"{type(model).__name__}.sample({k}) returned {type(x).__name__} "
                             f"{list(getattr(x, 'shape', []))}, expected a tensor of {k} images")
        parts.append(x.detach().float().cpu())
    return torch.cat(parts)
