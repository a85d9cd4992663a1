"""The character language model as a LightningModule: a GPT (genlab.nets.gpt) with its vocabulary, trained
with AdamW or Muon under a warmup + cosine learning rate (genlab.optim), logging loss, bits per character and
tokens/s. The vocabulary lives in the hyper-parameters, so a checkpoint alone can generate text
(`genlab generate`, genlab.tools.generate).
"""

from __future__ import annotations

import math
import time

import torch

from genlab.data.text import CharVocab
from genlab.models.base import GenlabModule, check_learning_rates
from genlab.nets.gpt import GPT, GPTConfig
from genlab.optim import MuonWithAdamW, WarmupCosine, decay_plan, restore_schedule_step, weight_decay_groups


class LanguageModel(GenlabModule):
    """A character-level GPT with its vocabulary, so a checkpoint alone can generate text.

    Args:
        vocab: the characters, in id order. None: taken from the datamodule (`datamodule.vocab.chars`) at setup
            and then stored in the hyper-parameters, hence in every checkpoint.
        block_size, n_layer, n_head, n_embd, dropout, bias, positional, attn_dropout: see GPTConfig.
        learning_rate: peak learning rate, reached after `warmup_steps` linear steps, then cosine decay to
            `min_lr_ratio * learning_rate` at the end of training.
        lr_decay: where "the end" is: "auto" = the Trainer's max_steps if set, else its max_time (the decay then
            follows the wall clock, so a time-budgeted run ends at the lowest rate), else the estimated total
            steps; "steps" / "time" force one; "none" keeps the peak after warmup.
        weight_decay: decoupled weight decay (AdamW's, and Muon's), applied to matrices (Linear weights,
            embeddings) only, not biases or norms.
        betas: AdamW betas.
        optimizer: "adamw" (the default), or "muon": torch.optim.Muon on the blocks' weight matrices and AdamW
            on embeddings, biases and norms (MuonWithAdamW), with the same learning rate and schedule.
        sample_prompt: the prompt of the sample-text callback.
        fast_dropout: on a CPU, draw dropout masks from random bytes (genlab.nets.fast_dropout), same maths as
            nn.Dropout at a lower cost; False: nn.Dropout.
        compile: run the training step's forward (and so its backward) through torch.compile. It costs a
            compilation at the start and pays only where the fused kernels beat eager mode by more than that
            (measured in reports/lm: `python scripts/bench_lm.py --set compile=true`); validation, sampling
            and generation stay eager, so their varying shapes never recompile.
    """

    def __init__(
        self,
        vocab: str | None = None,
        block_size: int = 256,
        n_layer: int = 6,
        n_head: int = 6,
        n_embd: int = 384,
        dropout: float = 0.0,
        bias: bool = True,
        positional: str = "learned",
        learning_rate: float = 1e-3,
        min_lr_ratio: float = 0.1,
        warmup_steps: int = 100,
        lr_decay: str = "auto",
        weight_decay: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.99),
        sample_prompt: str = "ROMEO:",
        attn_dropout: float | None = None,
        optimizer: str = "adamw",
        fast_dropout: bool = True,
        compile: bool = False,
    ):
        super().__init__()
        if lr_decay not in ("auto", "steps", "time", "none"):
            raise ValueError(f"lr_decay must be auto|steps|time|none, got {lr_decay!r}")
        check_learning_rates(learning_rate=learning_rate)
        if optimizer not in ("adamw", "muon"):
            raise ValueError(f"optimizer must be 'adamw' or 'muon', got {optimizer!r}")
        betas = tuple(float(b) for b in betas)
        self.save_hyperparameters()
        self.hparams.betas = list(betas)  # plain list: loads with weights_only=True everywhere
        # validate the sizes now, before any data is read
        GPTConfig(1, block_size, n_layer, n_head, n_embd, dropout, bias, positional, attn_dropout, fast_dropout)
        self.vocab: CharVocab | None = None
        self.model: GPT | None = None
        if vocab is not None:
            self._build(vocab)
        self._last_batch_time: float | None = None
        self._compiled_forward = None  # a function, not a module: the checkpoint's keys stay those of self.model

    # --- model and vocabulary

    def _build(self, vocab: str) -> None:
        if not vocab or len(set(vocab)) != len(vocab):
            raise ValueError("vocab must be a non-empty string of distinct characters")
        hp = self.hparams
        self.vocab = CharVocab(vocab)
        self.hparams.vocab = vocab
        self.config = GPTConfig(len(vocab), hp.block_size, hp.n_layer, hp.n_head, hp.n_embd, hp.dropout, hp.bias,
                                hp.positional, hp.get("attn_dropout"), hp.get("fast_dropout", True))
        self.model = GPT(self.config)

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        dm_vocab = getattr(getattr(dm, "vocab", None), "chars", None)
        if self.model is None:
            if dm_vocab is None:
                raise ValueError("LanguageModel(vocab=None) needs a datamodule with a `vocab` (CharTextDataModule) "
                                 "or an explicit `vocab` string")
            self._build(dm_vocab)
        elif dm_vocab is not None and dm_vocab != self.vocab.chars:
            raise ValueError(f"the data's vocabulary ({len(dm_vocab)} chars) differs from the model's "
                             f"({self.vocab.size} chars): ids would mean different characters")
        dm_block = getattr(dm, "block_size", None)
        if dm_block is not None and dm_block > self.config.block_size:
            raise ValueError(f"data block_size {dm_block} > model block_size {self.config.block_size}")

    def encode(self, text: str) -> list[int]:
        return self.vocab.encode(text)

    def decode(self, ids) -> str:
        return self.vocab.decode(ids)

    def generate_text(self, prompt: str, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None, seed: int | None = None, use_cache: bool = True) -> str:
        """prompt + continuation as text."""
        if not prompt:
            raise ValueError("the prompt must contain at least one character (e.g. '\\n')")
        ids = self.model.generate(self.encode(prompt), max_new_tokens, temperature, top_k, top_p, seed, use_cache)
        return self.decode(ids.tolist())

    def forward(self, idx, targets=None):
        return self.model(idx, targets)

    # --- optimisation

    def configure_optimizers(self):
        hp = self.hparams
        muon = []
        if hp.optimizer == "muon":
            muon = [p for p in self.model.blocks.parameters() if p.requires_grad and p.dim() == 2]
        groups = weight_decay_groups(self.model.parameters(), hp.weight_decay, exclude=muon)
        if muon:
            opt = MuonWithAdamW(muon, groups, hp.learning_rate, tuple(hp.betas), hp.weight_decay)
        else:
            opt = torch.optim.AdamW(groups, lr=hp.learning_rate, betas=tuple(hp.betas))
        total, progress = decay_plan(self.trainer, hp.lr_decay)
        schedule = WarmupCosine(opt, total, hp.warmup_steps, floor=hp.min_lr_ratio, progress=progress)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("hyper_parameters", {}).get("optimizer", "adamw")  # checkpoints before the knob: AdamW
        if checkpoint.get("optimizer_states") and saved != self.hparams.optimizer:
            raise ValueError(f"this checkpoint was trained with optimizer: {saved}, the model is configured with "
                             f"optimizer: {self.hparams.optimizer}; its optimizer state cannot be "
                             f"resumed. Set optimizer: {saved} to resume, or start a new run from the weights.")
        restore_schedule_step(checkpoint)

    def _train_forward(self):
        if not self.hparams.get("compile", False):
            return self.model
        if self._compiled_forward is None:
            self._compiled_forward = torch.compile(self.model.forward)
        return self._compiled_forward

    def training_step(self, batch, batch_idx):
        x, y = batch
        _, loss = self._train_forward()(x, y)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/lr", self.lr_schedulers().get_last_lr()[0])
        now = time.perf_counter()
        if self._last_batch_time is not None:  # time since the previous step: data, forward, backward, update
            self.log("train/tokens_per_s", x.numel() / (now - self._last_batch_time), prog_bar=True)
        self._last_batch_time = now
        return loss

    def on_train_epoch_start(self) -> None:
        self._last_batch_time = None  # do not count validation time as training time

    def on_validation_start(self) -> None:
        self._last_batch_time = None

    def validation_step(self, batch, batch_idx):
        x, y = batch
        _, loss = self.model(x, y)
        # weighted by characters, so the epoch value is the mean over every validation character
        self.log("val/loss", loss, batch_size=y.numel(), sync_dist=True, prog_bar=True)
        self.log("val/bpc", loss / math.log(2), batch_size=y.numel(), sync_dist=True)

    def test_step(self, batch, batch_idx):
        x, y = batch
        _, loss = self.model(x, y)
        self.log("test/loss", loss, batch_size=y.numel(), sync_dist=True)
        self.log("test/bpc", loss / math.log(2), batch_size=y.numel(), sync_dist=True)
