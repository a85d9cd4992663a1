"""Text samples of the language model at every validation, one row per temperature, and its attention maps."""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_warn

from genlab.callbacks.images import log_image, log_table
from genlab.figures.lm import ATTENTION_TEXT, attention_figure, sample_rows, text_attention
from genlab.nets.gpt import check_sampling_args


class TextSamplesCallback(pl.Callback):
    """Logs a table (temperature, sample) from a fixed prompt and seed after every validation.

    W&B shows it as a table (via genlab.callbacks.log_table); other loggers get a Markdown file in figures/.
    With `attention_text` (default: Tiny Shakespeare's first line; None: off) it also logs the heat maps of every
    layer's and head's attention over that fixed text (`genlab attention`'s figure) as `attention_key`, so the
    heads can be watched specialising as training goes on.
    """

    def __init__(self, prompt: str | None = None, temperatures: list[float] = (0.5, 1.0, 1.5),
                 max_new_tokens: int = 200, seed: int = 0, key: str = "samples/text",
                 attention_text: str | None = ATTENTION_TEXT, attention_key: str = "attention/maps"):
        super().__init__()
        self.prompt, self.temperatures = prompt, [float(t) for t in temperatures]
        self.max_new_tokens, self.seed, self.key = max_new_tokens, seed, key
        self.attention_text, self.attention_key = attention_text, attention_key
        self._attention_skipped = False
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
        self.log_attention(trainer, pl_module)

    def log_attention(self, trainer, pl_module) -> None:
        if not self.attention_text or self._attention_skipped:
            return
        text = self.attention_text[: pl_module.config.block_size]
        try:
            weights = text_attention(pl_module, text)
        except ValueError as err:  # characters the data never had: say so once, keep training
            self._attention_skipped = True
            rank_zero_warn(f"TextSamplesCallback: no attention maps ({err}); set attention_text to a text in the "
                           "training data's characters")
            return
        title = f"attention at step {trainer.global_step}: row = query, column = key; each row sums to 1"
        log_image(trainer, self.attention_key, attention_figure(weights, text, title), caption=text)
