"""Reporting callbacks (samples, figures, quality) never cost a run: they warn once and training goes on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genlab.cli import main

LOWERCASE = "the quick brown fox jumps over the lazy dog.\nand then it sleeps in the sun all day long.\n" * 40


def fit_lm(root: str, corpus: Path, *extra: str) -> int:
    return main(["fit", "--model", "genlab.models.lm.LanguageModel", "--model.n_layer", "1", "--model.n_head", "2",
                 "--model.n_embd", "16", "--model.block_size", "16", "--model.warmup_steps", "1",
                 "--data", "genlab.data.CharTextDataModule", "--data.path", str(corpus), "--data.block_size", "16",
                 "--data.batch_size", "8", "--data.train_samples_per_epoch", "32",
                 "--trainer.max_epochs", "2", "--trainer.limit_val_batches", "2", "--trainer.logger", "false",
                 "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", root,
                 "--trainer.callbacks", "genlab.callbacks.text_samples.TextSamplesCallback",
                 "--trainer.callbacks.prompt", "ROMEO:", "--trainer.callbacks.max_new_tokens", "8",
                 "--checkpoint.monitor", "val/loss", "--checkpoint.filename", "best", *extra])


def test_an_lm_on_a_corpus_lacking_the_prompts_letters_samples_from_validation_text_and_finishes(recwarn):
    corpus = Path("lower.txt")
    corpus.write_text(LOWERCASE, encoding="utf-8")
    assert fit_lm("runs/lm", corpus) == 0
    assert torch.load("runs/lm/checkpoints/last.ckpt", weights_only=True)["global_step"] == 8
    assert Path("runs/lm/checkpoints/best.ckpt").is_file()
    table = Path("runs/lm/figures/samples/text.md").read_text()
    assert "ROMEO" not in table and table.count("| 1.0 |") == 1
    said = [str(w.message) for w in recwarn if "sample prompt" in str(w.message)]
    assert len(said) == 1 and "'R'" in said[0] and "validation text" in said[0]


def test_a_report_that_fails_warns_once_and_training_goes_on(recwarn):
    corpus = Path("lower.txt")
    corpus.write_text(LOWERCASE, encoding="utf-8")
    Path("runs/broken").mkdir(parents=True)
    Path("runs/broken/figures").write_text("a file where the figures folder should be")
    assert fit_lm("runs/broken", corpus, "--trainer.callbacks.prompt", "the") == 0
    assert torch.load("runs/broken/checkpoints/last.ckpt", weights_only=True)["global_step"] == 8
    said = [str(w.message) for w in recwarn if "failed, training goes on" in str(w.message)]
    assert len(said) == 1 and said[0].startswith("text samples failed") and "\n" not in said[0]


@pytest.mark.parametrize("hook", ["on_validation_epoch_end", "on_train_epoch_end"])
def test_sample_quality_failures_do_not_stop_training(hook, recwarn):
    from genlab.callbacks.sample_quality import SampleQualityCallback

    class Trainer:
        sanity_checking, current_epoch, world_size, global_rank = False, 0, 1, 0

        class state:
            fn = "fit"

    class Broken(torch.nn.Module):  # a module whose sampling fails
        @property
        def device(self):
            raise RuntimeError("no samples today")

    callback = SampleQualityCallback(n_samples=4)
    getattr(callback, hook)(Trainer(), Broken())
    getattr(callback, hook)(Trainer(), Broken())
    said = [str(w.message) for w in recwarn if "failed, training goes on" in str(w.message)]
    assert len(said) == 1 and "no samples today" in said[0]
