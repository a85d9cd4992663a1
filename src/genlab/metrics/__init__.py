"""Evaluation: sample quality with genlab's own MNIST / Fashion-MNIST classifier and the metrics on its features,
and translation quality (genlab.metrics.translation: sacreBLEU's corpus BLEU, exact match).

    from genlab.metrics import SampleQuality
    SampleQuality("mnist").evaluate(images)   # images [N,1,28,28] in [0,1]; value_range=(-1, 1) for tanh

See genlab.metrics.quality for what each number means and genlab.metrics.classifier for the judge's weights
(the judge is trained by genlab.models.classifier.Classifier).
Names are imported on first use, so `genlab evaluate --help` does not pay for torch and Lightning.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ClassifierNet": "classifier",
    "ClassifierWeightsError": "classifier",
    "load_classifier": "classifier",
    "retrain_command": "classifier",
    "weights_path": "classifier",
    "FeatureSet": "quality",
    "SampleQuality": "quality",
    "class_coverage": "quality",
    "confident_fraction": "quality",
    "fid_from_features": "quality",
    "frechet_distance": "quality",
    "inception_score": "quality",
    "kid_from_features": "quality",
    "to_unit_range": "quality",
    "corpus_bleu": "translation",
    "exact_match": "translation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"genlab.metrics.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'genlab.metrics' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
