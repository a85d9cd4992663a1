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


def test_text_is_held_as_a_compact_integer_tensor_and_batches_come_out_as_long_ids():
    from genlab.data.text import CharTextDataModule

    text = "héllo wörld, " * 50 + "\n" + "".join(map(chr, range(0x400, 0x400 + 300)))  # 300+ characters
    Path("small.txt").write_text(text[:650], encoding="utf-8")
    Path("wide.txt").write_text(text, encoding="utf-8")
    small = CharTextDataModule(path="small.txt", block_size=8, batch_size=4)
    small.setup()
    assert small._train.ids.dtype == torch.uint8
    x, y = next(iter(small.train_dataloader()))
    assert x.dtype == y.dtype == torch.long and x.shape == (4, 8)
    assert torch.equal(x[0, 1:], y[0, :-1])
    ids = torch.cat([small._train.ids, small._val.ids]).long()
    assert ids.tolist() == small.vocab.encode(text[:650])
    assert small.val_prompt() == text[:650][len(small._train.ids):][:32].split("\n")[0]
    wide = CharTextDataModule(path="wide.txt", block_size=8, batch_size=4)
    wide.setup()
    assert wide.vocab.size > 256 and wide._train.ids.dtype == torch.int16
    assert torch.cat([wide._train.ids, wide._val.ids]).long().tolist() == wide.vocab.encode(text)
    assert next(iter(wide.val_dataloader()))[0].dtype == torch.long


def test_shipped_cpu_lm_config_validates_by_the_clock_several_times_within_its_budget(repo):
    """A time budget validated every N steps validates a large corpus once or never (980 steps on a 6.7 MB corpus
    took longer than 3 minutes): the cadence is in minutes, so any corpus on any machine validates several times."""
    import yaml

    trainer = yaml.safe_load((repo / "configs" / "lm_shakespeare.yaml").read_text())["trainer"]

    def seconds(dd_hh_mm_ss: str) -> int:
        d, h, m, s = (int(x) for x in dd_hh_mm_ss.split(":"))
        return ((d * 24 + h) * 60 + m) * 60 + s

    assert trainer["check_val_every_n_epoch"] is None
    assert seconds(trainer["max_time"]) / seconds(trainer["val_check_interval"]) >= 4


def test_the_validation_prompt_is_the_first_line_with_text():
    """A validation split that starts at a line break gave a prompt of several lines (the "Next:" hint printed a
    quoted argument over three lines); the prompt is the first line that holds text."""
    from genlab.data.text import CharTextDataModule

    tail = ("\nGREMIO:\nGood morrow, neighbour Baptista, good morrow\n" + "z" * 60)[:60]
    Path("corpus.txt").write_text("ab cd\n" * 90 + tail, encoding="utf-8")  # 600 characters: 60 validate
    data = CharTextDataModule(path="corpus.txt", block_size=8, batch_size=4)
    data.setup()
    val_text = data.vocab.decode(data._val.ids.tolist())
    assert val_text.startswith("\n")
    assert data.val_prompt() == "GREMIO:"


def test_the_validation_prompt_skips_a_line_cut_by_the_split():
    """On one's own text the split fell mid-line and the "Next:" hint offered --prompt 'eans of the training
    batches |'; a cut first line is skipped for the next whole one."""
    from genlab.data.text import CharTextDataModule

    Path("corpus.txt").write_text("ab cd\n" * 90 + "half a line\nWhole line here\n" + "z" * 33, encoding="utf-8")
    data = CharTextDataModule(path="corpus.txt", block_size=8, batch_size=4)
    data.setup()
    val_text = data.vocab.decode(data._val.ids.tolist())
    assert not val_text.startswith("\n") and val_text.split("\n")[0] in "half a line"  # the split cut this line
    assert data.val_prompt() == "Whole line here"


def test_summary_history_records_a_validation_with_what_the_module_logs_at_its_end(tmp_path):
    """The translator logs val/bleu in its own on_validation_epoch_end, which Lightning calls after the callbacks':
    the summary recorded each BLEU one validation late, and the previous val/loss again at the epoch's end (the
    30-minute benchmark's history held every value twice). Each point is the step of the validation that made it."""
    import pytorch_lightning as pl
    from pytorch_lightning.demos.boring_classes import BoringModel

    from genlab.callbacks.summary import RunSummary

    class Model(BoringModel):
        def validation_step(self, batch, batch_idx):
            self.log("val/loss", float(self.global_step))

        def on_validation_epoch_end(self):
            self.log("val/bleu", float(self.global_step))

    summary = RunSummary()
    trainer = pl.Trainer(default_root_dir=tmp_path, max_epochs=2, limit_train_batches=8, limit_val_batches=2,
                         val_check_interval=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, callbacks=[summary])
    trainer.fit(Model())
    steps = [4, 8, 12, 16]
    assert summary.history["val/loss"] == [[s, float(s)] for s in steps]
    assert summary.history["val/bleu"] == [[s, float(s)] for s in steps]


def test_summary_history_has_no_stale_validation_points():
    """A validation in the middle of an epoch is recorded at its step; the epoch's end must not record the same,
    stale values again at a later step (curves showed flat steps that no validation measured), nor a validation
    the quality figures of an earlier evaluation, while a group that is fresh (sample quality computed at the
    epoch's end) is recorded where it was computed."""
    from types import SimpleNamespace

    from genlab.callbacks.summary import RunSummary

    summary = RunSummary()
    trainer = SimpleNamespace(sanity_checking=False, global_step=100, callback_metrics={"val/loss": 2.0})
    summary.on_validation_end(trainer, None)
    trainer.global_step, trainer.callback_metrics = 123, {"val/loss": 2.0, "quality/fid": 5.0}  # epoch ends
    summary.on_train_epoch_end(trainer, None)
    trainer.global_step, trainer.callback_metrics = 200, {"val/loss": 1.5, "quality/fid": 5.0}
    summary.on_validation_end(trainer, None)
    trainer.global_step, trainer.callback_metrics = 246, {"val/loss": 1.5, "quality/fid": 4.0}
    summary.on_train_epoch_end(trainer, None)
    assert summary.history["val/loss"] == [[100, 2.0], [200, 1.5]]
    assert summary.history["quality/fid"] == [[123, 5.0], [246, 4.0]]
