"""Checkpoints written before the nets/models/tools split (tests/fixtures/old_layout_*.ckpt) still load."""

from __future__ import annotations

from pathlib import Path

import torch

from genlab.checkpoints import load_module
from genlab.cli import main
from genlab.models.classifier import Classifier
from genlab.models.lm import LanguageModel

FIXTURES = Path(__file__).resolve().parent / "fixtures"
OLD_LM, OLD_CLASSIFIER = FIXTURES / "old_layout_lm.ckpt", FIXTURES / "old_layout_classifier.ckpt"
# what the old layout's code generated from OLD_LM: generate_text("ROMEO:", 30, temperature=0.8, seed=0)
OLD_TEXT = "ROMEO:eh.hoac?oOmUToChruDyom,:Ruu!RU"


def test_fixtures_name_the_old_class_paths():
    assert torch.load(OLD_LM, weights_only=True)["genlab_class"] == "genlab.models.lm.LanguageModel"
    assert torch.load(OLD_CLASSIFIER, weights_only=True)["genlab_class"] == "genlab.metrics.classifier.Classifier"


def test_old_language_model_loads_and_generates_the_same_text():
    model = load_module(OLD_LM, expected=LanguageModel)
    assert model.vocab.chars == torch.load(OLD_LM, weights_only=True)["hyper_parameters"]["vocab"]
    assert model.generate_text("ROMEO:", 30, 0.8, seed=0) == OLD_TEXT


def test_old_language_model_through_genlab_generate(capsys):
    args = ["generate", "--ckpt", str(OLD_LM), "--prompt", "ROMEO:", "--temperature", "0.8", "--seed", "0",
            "--max-new-tokens", "30"]
    assert main(args) == 0
    assert OLD_TEXT in capsys.readouterr().out


def test_old_classifier_path_loads_as_the_moved_class():
    model = load_module(OLD_CLASSIFIER, expected=Classifier)
    assert type(model) is Classifier and not model.training
    saved = torch.load(OLD_CLASSIFIER, weights_only=True)["state_dict"]
    assert saved.keys() == model.state_dict().keys()
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
