"""genlab.launch: how scripts, studies and tests start a run from Python, on the `genlab fit` path."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from genlab import launch
from tiny_models import STEPS_PER_EPOCH, TINY_FIT


def tiny(root: str) -> list[str]:
    return [*TINY_FIT, "--trainer.max_epochs", "1", "--trainer.default_root_dir", root]


def test_overrides_are_written_as_the_command_line_takes_them():
    args = launch.arguments(["a.yaml", Path("b.yaml")], {"trainer.max_epochs": 2, "trainer.logger": False,
                                                         "model.init_args.betas": [0.5, 0.9], "x": None, "y": "s"})
    assert args == ["-c", "a.yaml", "-c", "b.yaml", "--trainer.max_epochs", "2", "--trainer.logger", "false",
                    "--model.init_args.betas", "[0.5, 0.9]", "--x", "null", "--y", "s"]
    assert launch.arguments([], ["--a", "1"]) == ["--a", "1"]
    assert launch.init_args(["n_embd=256", "data.batch_size=64", "learning_rate=4e-3"]) == {
        "model.init_args.n_embd": "256", "data.init_args.batch_size": "64", "model.init_args.learning_rate": "4e-3"}
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        launch.init_args(["n_embd"])
    assert [launch.max_time(m) for m in (15, 0.25, 61.5, 0)] == ["00:00:15:00", "00:00:00:15", "00:01:01:30",
                                                                "00:00:00:01"]


def test_fit_makes_the_run_genlab_fit_makes_with_extra_callbacks(data_root):
    steps = []

    class Count(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            steps.append(trainer.global_step)

    run = launch.fit([], tiny("runs/a"), callbacks=[Count()])
    assert run.trainer.global_step == STEPS_PER_EPOCH and steps == list(range(1, STEPS_PER_EPOCH + 1))
    for name in ("config.yaml", "summary.json", "checkpoints/last.ckpt"):
        assert (Path("runs/a") / name).is_file(), name
    with pytest.raises(SystemExit, match="already holds a run"):  # the command's refusal, as one line
        launch.fit([], tiny("runs/a"))

    built = launch.build([], tiny("runs/b")).fit()  # same seed, same path
    assert built.trainer.global_step == STEPS_PER_EPOCH
    for (key, a), b in zip(run.model.state_dict().items(), built.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
