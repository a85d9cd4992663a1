"""Tests of the sample-quality evaluator: classifier weights, FID/KID/IS/coverage, CLI, callback."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from genlab.data import load_images
from genlab.metrics import (
    ClassifierWeightsError,
    SampleQuality,
    class_coverage,
    fid_from_features,
    frechet_distance,
    inception_score,
    kid_from_features,
    load_classifier,
    to_unit_range,
    weights_path,
)
from genlab.metrics.classifier import accuracy

# The shipped classifiers' required accuracies, checked on a fixed 1,000-image test subset.
REQUIRED_ACCURACY = {"mnist": 0.994, "fashion_mnist": 0.92}


# Module-level caches (the conftest's data_root fixture is session-scoped; images load in ~1 s).
_IMAGES: dict = {}


def images(dataset: str, split: str, data_root):
    key = (dataset, split)
    if key not in _IMAGES:
        _IMAGES[key] = load_images(dataset, split, data_root)
    return _IMAGES[key]


@pytest.fixture(scope="module")
def sq(data_root):
    return SampleQuality("mnist", root=str(data_root), kid_subsets=20)


@pytest.fixture(scope="module")
def test_features(sq):
    return sq.real("test")


# ------------------------------------------------------------------------------------------ weights


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_shipped_weights_reach_stated_accuracy(dataset, data_root):
    net = load_classifier(dataset)
    x, y = images(dataset, "test", data_root)
    acc = accuracy(net, x[:1000], y[:1000])
    assert acc >= REQUIRED_ACCURACY[dataset], f"{dataset}: {acc:.4f} on the first 1,000 test images"
    assert weights_path(dataset).stat().st_size < 1_500_000


def test_corrupted_weights_give_clear_error(tmp_path):
    good = weights_path("mnist")
    bad = tmp_path / "mnist_classifier.pt"
    shutil.copy(good, bad)
    shutil.copy(good.with_name(good.name + ".sha256"), tmp_path / "mnist_classifier.pt.sha256")
    load_classifier("mnist", path=bad)  # an intact copy loads
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(ClassifierWeightsError, match="corrupted") as err:
        load_classifier("mnist", path=bad)
    assert "genlab fit -c configs/classifier_mnist.yaml" in str(err.value)
    assert "genlab export-classifier --ckpt runs/classifier_mnist/checkpoints/best.ckpt" in str(err.value)
    # a matching hash over a file that is not a weights file
    bad.write_bytes(b"not a torch file")
    from genlab.metrics.classifier import sha256_of

    (tmp_path / "mnist_classifier.pt.sha256").write_text(sha256_of(bad) + "  mnist_classifier.pt\n")
    with pytest.raises(ClassifierWeightsError, match="cannot load"):
        load_classifier("mnist", path=bad)
    with pytest.raises(ClassifierWeightsError, match="(?s)not found.*genlab fit -c configs/classifier_mnist.yaml"):
        load_classifier("mnist", path=tmp_path / "missing.pt")


# ------------------------------------------------------------------------------------------ inputs


def test_value_range_is_checked_and_mapped():
    x = torch.rand(8, 1, 28, 28)
    assert torch.allclose(to_unit_range(x * 2 - 1, value_range=(-1, 1)), x, atol=1e-6)
    assert to_unit_range(x[:, 0]).shape == (8, 1, 28, 28)
    with pytest.raises(ValueError, match=r"value_range=\(-1, 1\)"):  # tanh output declared as [0,1]: hint
        to_unit_range(x * 2 - 1)
    with pytest.raises(ValueError, match="lie in"):
        to_unit_range(x + 0.5)
    with pytest.raises(ValueError, match="divide by 255"):
        to_unit_range(x * 255)
    with pytest.raises(ValueError, match="value_range must be"):
        to_unit_range(x, value_range=(0, 255))
    with pytest.raises(ValueError, match="NaN"):
        to_unit_range(torch.full((2, 1, 28, 28), float("nan")))
    with pytest.raises(ValueError, match="shape"):
        to_unit_range(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match="floating point"):
        to_unit_range((x * 255).to(torch.uint8))


def test_evaluate_rejects_out_of_range_images(sq):
    with pytest.raises(ValueError, match="value_range"):
        sq.evaluate(torch.rand(10, 1, 28, 28) * 2 - 1)


# ------------------------------------------------------------------------------------------ FID, KID


def features_like(n: int, seed: int) -> np.ndarray:
    """Correlated 32-d features, a stand-in for the judge's: the formula's properties need no data set."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 32)) @ rng.normal(size=(32, 32)) + rng.normal(size=32)


def test_fid_of_a_set_with_itself_is_zero():
    f = features_like(3000, 0)
    assert fid_from_features(f, f) < 1e-6


def test_fid_is_symmetric():
    a, b = features_like(5000, 1), features_like(5000, 2)
    ab, ba = fid_from_features(a, b), fid_from_features(b, a)
    assert ab > 0
    assert abs(ab - ba) <= 1e-6 * max(1.0, ab)


def test_fid_is_robust_to_singular_covariances():
    rng = np.random.default_rng(0)
    few = rng.normal(size=(30, 64))  # fewer samples than dimensions: rank-deficient covariance
    low_rank = rng.normal(size=(300, 4)) @ rng.normal(size=(4, 64))
    for a, b in [(few, few), (few, low_rank), (low_rank, low_rank + 1e-3)]:
        fid = fid_from_features(a, b)
        assert np.isfinite(fid) and fid >= 0
    assert frechet_distance(np.zeros(3), np.zeros((3, 3)), np.zeros(3), np.zeros((3, 3))) == pytest.approx(0, abs=1e-5)


def test_fid_grows_with_gaussian_noise(sq, test_features, data_root):
    x, _ = images("mnist", "test", data_root)
    x = x[:1000]
    ref = test_features.features[5000:]  # other real images as the reference set
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    fids = []
    for sigma in (0.0, 0.1, 0.2, 0.4):
        fs = sq.features((x + sigma * noise).clamp(0, 1))
        fids.append(fid_from_features(fs.features, ref))
    assert all(a < b for a, b in zip(fids, fids[1:], strict=False)), fids


def test_kid_of_two_halves_of_the_test_set_is_near_zero(test_features):
    perm = torch.randperm(len(test_features), generator=torch.Generator().manual_seed(0)).numpy()
    a, b = test_features.features[perm[:5000]], test_features.features[perm[5000:]]
    kid, kid_std = kid_from_features(a, b, n_subsets=20, subset_size=1000)
    assert kid_std > 0
    assert abs(kid) < 2 * kid_std, (kid, kid_std)
    # while noisy images are far away on the same scale
    noisy_kid, _ = kid_from_features(a, a * 0.5, n_subsets=10, subset_size=500)
    assert noisy_kid > 20 * kid_std


# ------------------------------------------------------------------------------------------ coverage


def test_coverage_of_a_single_class_set_is_one_class(sq, test_features, data_root):
    x, y = images("mnist", "test", data_root)
    fs = sq.features(x[y == 3])
    cov = class_coverage(fs.probs)
    assert cov["classes_covered"] == 1
    assert cov["max_class_share"] > 0.95
    assert inception_score(fs.probs) < 1.2
    real = fid_from_features(test_features.features[:5000], test_features.features[5000:])
    assert fid_from_features(fs.features, test_features.features) > 10 * real


def test_class_coverage_counts_and_kl():
    probs = torch.eye(10)[torch.tensor([0] * 50 + [1] * 46 + [2] * 4)]
    cov = class_coverage(probs)
    assert cov["classes_covered"] == 2  # class 2 holds 4% < 5%
    assert cov["min_class_share"] == 0 and cov["max_class_share"] == 0.5
    uniform = class_coverage(torch.eye(10).repeat(10, 1))
    assert uniform["classes_covered"] == 10 and uniform["class_kl_uniform"] == pytest.approx(0, abs=1e-12)


# ------------------------------------------------------------------------------------------ CLI


KEYS = {"fid", "fid_floor", "kid", "kid_std", "inception_score", "classes_covered", "min_class_share",
        "max_class_share", "confident_fraction"}


def last_json(capsys) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def test_evaluate_floor_prints_json_last(capsys, data_root):
    from genlab.tools.evaluate import main

    assert main(["--floor", "--dataset", "mnist", "--n", "2000", "--kid-subsets", "10"]) == 0
    result = last_json(capsys)
    assert KEYS | {"classifier_test_accuracy"} <= set(result)
    assert result["fid"] == result["fid_floor"]
    assert result["classes_covered"] == 10 and result["classifier_test_accuracy"] >= 0.994
    assert result["confident_fraction"] > 0.95 and result["inception_score"] > 9


class RealImagesModel(torch.nn.Module):
    """Stands in for a VAE/DCGAN: 'samples' are real test images (so coverage is full)."""

    def __init__(self, x):
        super().__init__()
        self.x = x
        self.hparams = {"dataset": "mnist"}

    def sample(self, n, seed=None):
        gen = torch.Generator().manual_seed(seed or 0)
        return self.x[torch.randint(len(self.x), (n,), generator=gen)]


def test_evaluate_checkpoint(monkeypatch, capsys, data_root):
    import genlab.checkpoints
    from genlab.tools.evaluate import main

    x, _ = images("mnist", "test", data_root)
    monkeypatch.setattr(genlab.checkpoints, "load_module", lambda path, expected=None: RealImagesModel(x))
    assert main(["--ckpt", "fake.ckpt", "--n", "1500", "--kid-subsets", "10"]) == 0
    result = last_json(capsys)
    assert KEYS <= set(result) and result["n"] == 1500
    assert result["classes_covered"] == 10


def test_evaluate_bad_input_exits_2(capsys):
    from genlab.tools.evaluate import main

    assert main(["--ckpt", "no/such.ckpt"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:
        main(["--floor", "--n", "1"])
    assert err.value.code == 2
    with pytest.raises(SystemExit) as err:
        main([])
    assert err.value.code == 2


# ------------------------------------------------------------------------------------------ callback


def test_callback_logs_and_warns_on_collapse(data_root):
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    from genlab.callbacks import SampleQualityCallback

    x, y = images("mnist", "test", data_root)
    ones = x[y == 1]

    class OneDigitModel(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, batch_idx):
            return (self.w - 1).pow(2).sum()

        def validation_step(self, batch, batch_idx):
            self.log("val/loss", self.w.sum())

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

        def sample(self, n, seed=None):
            return ones[:n]

    loader = DataLoader(TensorDataset(torch.zeros(4, 1)), batch_size=2)
    cb = SampleQualityCallback(n_samples=500, dataset="mnist", kid_subsets=10)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, callbacks=[cb])
    with pytest.warns(UserWarning, match="coverage collapsed: only 1 of 10 classes"):
        trainer.fit(OneDigitModel(), loader, loader)
    assert trainer.callback_metrics["quality/classes_covered"].item() == 1
    assert {"quality/fid", "quality/fid_floor", "quality/kid", "quality/confident_fraction"} <= set(trainer.callback_metrics)


def test_translation_scores():
    """genlab.metrics.translation: exact match as a share, sacreBLEU's corpus BLEU (character n-grams for dates)."""
    from genlab.metrics import corpus_bleu, exact_match

    refs = ["1987-03-03", "2001-12-25"]
    assert exact_match(refs, refs) == 1.0 and exact_match(["1987-03-03", "2001-12-26"], refs) == 0.5
    assert exact_match([], []) == 0.0
    with pytest.raises(ValueError):
        exact_match(["1987-03-03"], refs)  # one hypothesis per reference
    assert corpus_bleu(refs, refs, "char") == pytest.approx(100.0)
    assert 50 < corpus_bleu(["1987-03-03", "2001-12-26"], refs, "char") < 100
    assert corpus_bleu(["1987-03-03", "2001-12-26"], refs) < corpus_bleu(["1987-03-03", "2001-12-26"], refs, "char")
