"""Text samples of the language model at every validation, one row per temperature."""

from __future__ import annotations

import pytorch_lightning as pl

from genlab.callbacks.images import log_table
from genlab.figures.lm import sample_rows
from genlab.nets.gpt import check_sampling_args


class TextSamplesCallback(pl.Callback):
    """Logs a table (temperature, sample) from a fixed prompt and seed after every validation.

    W&B shows it as a table (via genlab.callbacks.log_table); other loggers get a Markdown file in figures/.
    """

    def __init__(self, prompt: str | None = None, temperatures: list[float] = (0.5, 1.0, 1.5),
                 max_new_tokens: int = 200, seed: int = 0, key: str = "samples/text"):
        super().__init__()
        self.prompt, self.temperatures = prompt, [float(t) for t in temperatures]
        self.max_new_tokens, self.seed, self.key = max_new_tokens, seed, key
        for t in self.temperatures:
            check_sampling_args(max_new_tokens, t, None, None)

    def rows(self, pl_module) -> list[list]:
        """[temperature, sample] for each temperature, from a LanguageModel (genlab.models.lm)."""
        prompt = self.prompt if self.prompt is not None else pl_module.hparams.sample_prompt
        return sample_rows(pl_module, prompt, self.temperatures, self.max_new_tokens, self.seed)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.global_rank != 0:
            return
        self.last_rows = self.rows(pl_module)  # genlab's end-of-run report prints the last ones
        log_table(trainer, self.key, ["temperature", "sample"], self.last_rows)
