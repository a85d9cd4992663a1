"""Text samples of the language model at every validation, one row per temperature, and its attention maps."""

from __future__ import annotations

import warnings

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_warn

from genlab.data.text import unknown_characters
from genlab.figures.lm import ATTENTION_TEXT, attention_figure, sample_rows, text_attention
from genlab.nets.gpt import check_sampling_args
from genlab.reporting import log_image, log_table, never_fatal


class TextSamplesCallback(pl.Callback):
    """Logs a table (temperature, sample) from a fixed prompt and seed after every validation.

    W&B shows it as a table (via genlab.reporting.log_table); other loggers get a Markdown file in figures/.
    With `attention_text` (default: Tiny Shakespeare's first line; None: off) it also logs the heat maps of every
    layer's and head's attention over that fixed text (`genlab attention`'s figure) as `attention_key`, so the
    heads can be watched specialising as training goes on.
    A prompt with characters the corpus lacks (the vocabulary is the corpus's) is replaced by the start of the
    validation text, with one warning; any other failure to sample or write is one warning too, never a crash.
    """

    def __init__(self, prompt: str | None = None, temperatures: list[float] = (0.5, 1.0, 1.5),
                 max_new_tokens: int = 200, seed: int = 0, key: str = "samples/text",
                 attention_text: str | None = ATTENTION_TEXT, attention_key: str = "attention/maps"):
        super().__init__()
        self.prompt, self.temperatures = prompt, [float(t) for t in temperatures]
        self.max_new_tokens, self.seed, self.key = max_new_tokens, seed, key
        self.attention_text, self.attention_key = attention_text, attention_key
        self._attention_skipped = False
        self._said_fallback = False
        for t in self.temperatures:
            check_sampling_args(max_new_tokens, t, None, None)

    def rows(self, pl_module, datamodule=None) -> list[list]:
        """[temperature, sample] for each temperature, from a LanguageModel (genlab.models.lm)."""
        prompt = self.prompt if self.prompt is not None else pl_module.hparams.sample_prompt
        return sample_rows(pl_module, self.usable_prompt(pl_module, prompt, datamodule), self.temperatures,
                           self.max_new_tokens, self.seed)

    def usable_prompt(self, pl_module, prompt: str, datamodule=None) -> str:
        """`prompt`, or when the vocabulary lacks some of its characters, the start of the validation text."""
        vocab = getattr(pl_module, "vocab", None)
        missing = sorted(set(prompt) - set(vocab.chars)) if vocab is not None else []
        if prompt and not missing:
            return prompt
        fallback = datamodule.val_prompt() if hasattr(datamodule, "val_prompt") else (vocab.chars[:1] if vocab else "")
        if not self._said_fallback:
            self._said_fallback = True
            why = f"has characters the corpus lacks ({unknown_characters(missing)})" if missing else "is empty"
            warnings.warn(f"sample prompt {prompt!r} {why}: sampling from {fallback!r}, the start of the validation "
                          f"text, instead (set the callback's `prompt` to change it)", UserWarning, stacklevel=2)
        return fallback

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.global_rank != 0:
            return
        with never_fatal(self, "text samples"):
            # genlab's end-of-run report prints the last ones
            self.last_rows = self.rows(pl_module, getattr(trainer, "datamodule", None))
            log_table(trainer, self.key, ["temperature", "sample"], self.last_rows)
        with never_fatal(self, "attention maps"):
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
