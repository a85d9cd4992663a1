"""Text samples of the language model at every validation, one row per temperature."""

from __future__ import annotations

import warnings

import pytorch_lightning as pl

from genlab.callbacks.images import log_table
from genlab.callbacks.reporting import never_fatal
from genlab.figures.lm import sample_rows
from genlab.nets.gpt import check_sampling_args


class TextSamplesCallback(pl.Callback):
    """Logs a table (temperature, sample) from a fixed prompt and seed after every validation.

    W&B shows it as a table (via genlab.callbacks.log_table); other loggers get a Markdown file in figures/.
    A prompt with characters the corpus lacks (the vocabulary is the corpus's) is replaced by the start of the
    validation text, with one warning; any other failure to sample or write is one warning too, never a crash.
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
        return sample_rows(pl_module, self.usable_prompt(pl_module, prompt), self.temperatures,
                           self.max_new_tokens, self.seed)

    def usable_prompt(self, pl_module, prompt: str) -> str:
        """`prompt`, or when the vocabulary lacks some of its characters, the start of the validation text."""
        vocab = getattr(pl_module, "vocab", None)
        missing = sorted(set(prompt) - set(vocab.chars)) if vocab is not None else []
        if prompt and not missing:
            return prompt
        trainer = pl_module._trainer
        datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
        fallback = datamodule.val_prompt() if hasattr(datamodule, "val_prompt") else (vocab.chars[:1] if vocab else "")
        if not getattr(self, "_said_fallback", False):
            self._said_fallback = True
            why = (f"has characters the corpus lacks ({', '.join(map(repr, missing))})" if missing else "is empty")
            warnings.warn(f"sample prompt {prompt!r} {why}: sampling from {fallback!r}, the start of the validation "
                          f"text, instead (set the callback's `prompt` to change it)", UserWarning, stacklevel=2)
        return fallback

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.global_rank != 0:
            return
        with never_fatal(self, "text samples"):
            self.last_rows = self.rows(pl_module)  # genlab's end-of-run report prints the last ones
            log_table(trainer, self.key, ["temperature", "sample"], self.last_rows)
