"""Translation with an encoder-decoder transformer: the LightningModule around genlab.nets.seq2seq.Seq2Seq.

Training is teacher forcing (the decoder reads the reference target shifted by one and predicts each next
token). Validation logs the loss, greedy exact match, a table of source / reference / hypothesis and a picture
of the cross-attention weights per head. Testing adds corpus BLEU (sacreBLEU) and exact match, greedy and by beam
search (genlab.metrics.translation); the picture is genlab.figures.seq2seq's. Both vocabularies are
hyper-parameters, so a checkpoint alone can translate (`genlab translate`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genlab.data.seq2seq import TokenVocab
from genlab.metrics.translation import corpus_bleu, exact_match
from genlab.models.base import GenlabModule
from genlab.nets.seq2seq import BOS, PAD, Seq2Seq, Seq2SeqConfig
from genlab.optim import WarmupCosine, decay_plan, restore_schedule_step, weight_decay_groups
from genlab.runtime import eval_mode


class Translator(GenlabModule):
    """A character-level encoder-decoder transformer with its two vocabularies.

    Args:
        src_vocab, tgt_vocab: the characters of each side, in id order; None: taken from the datamodule
            (Seq2SeqDataModule) at setup and then stored in the hyper-parameters, hence in every checkpoint.
        d_model, n_head, n_enc_layer, n_dec_layer, d_ff, dropout, positional, max_src_len, max_tgt_len:
            see genlab.nets.seq2seq.Seq2SeqConfig.
        learning_rate: peak AdamW rate after `warmup_steps` linear steps, then cosine decay to
            min_lr_ratio * peak at the end of training (the Trainer's max_time if set, else its step budget).
        weight_decay: AdamW's, on matrices only.
        test_beam: beam width of the test-time beam search (test/bleu_beam, test/exact_match_beam).
        bleu_tokenize: sacreBLEU's tokenizer: "13a" for sentences of words, "char" for character strings
            such as dates (a date is one word, so word 4-grams would not exist).
        n_examples: rows of the validation examples table.
        attention_example: the source shown in the cross-attention picture; None: the first validation source.
    """

    def __init__(self, src_vocab: str | None = None, tgt_vocab: str | None = None, d_model: int = 128,
                 n_head: int = 4, n_enc_layer: int = 2, n_dec_layer: int = 2, d_ff: int | None = None,
                 dropout: float = 0.1, positional: str = "learned", max_src_len: int = 64, max_tgt_len: int = 32,
                 learning_rate: float = 1e-3, min_lr_ratio: float = 0.1, warmup_steps: int = 200,
                 weight_decay: float = 0.01, test_beam: int = 4, bleu_tokenize: str = "13a", n_examples: int = 8,
                 attention_example: str | None = None):
        super().__init__()
        if test_beam < 1:
            raise ValueError(f"test_beam must be >= 1, got {test_beam}")
        self.save_hyperparameters()
        Seq2SeqConfig(1, 1, d_model, n_head, n_enc_layer, n_dec_layer, d_ff, dropout, positional, max_src_len,
                      max_tgt_len)  # validate the sizes before any data is read
        self.model: Seq2Seq | None = None
        self.src_vocab = self.tgt_vocab = None
        if src_vocab is not None and tgt_vocab is not None:
            self._build(src_vocab, tgt_vocab)
        self._outputs: dict[str, list] = {}

    def _build(self, src_chars: str, tgt_chars: str) -> None:
        hp = self.hparams
        self.src_vocab, self.tgt_vocab = TokenVocab(src_chars, "source"), TokenVocab(tgt_chars, "target")
        self.hparams.src_vocab, self.hparams.tgt_vocab = src_chars, tgt_chars
        self.config = Seq2SeqConfig(self.src_vocab.size, self.tgt_vocab.size, hp.d_model, hp.n_head, hp.n_enc_layer,
                                    hp.n_dec_layer, hp.d_ff, hp.dropout, hp.positional, hp.max_src_len,
                                    hp.max_tgt_len)
        self.model = Seq2Seq(self.config)

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        src, tgt = getattr(dm, "src_vocab", None), getattr(dm, "tgt_vocab", None)
        if self.model is None:
            if src is None:
                raise ValueError("Translator(src_vocab=None) needs a Seq2SeqDataModule (or explicit vocabularies)")
            self._build(src.chars, tgt.chars)
        elif src is not None and (src.chars, tgt.chars) != (self.src_vocab.chars, self.tgt_vocab.chars):
            raise ValueError("the data's vocabularies differ from the model's: ids would mean other characters")
        if dm is not None and getattr(dm, "train_pairs", None) is not None:
            for side, need, have in (("src", dm.max_src_len, self.config.max_src_len),
                                     ("tgt", dm.max_tgt_len, self.config.max_tgt_len)):
                if need > have:
                    raise ValueError(f"the data has {side} sequences of {need} tokens > max_{side}_len={have}; "
                                     f"set --model.init_args.max_{side}_len {need}")

    # --- translating

    def encode_sources(self, texts: list[str]) -> torch.Tensor:
        """PAD-padded source ids [B, S]; unknown characters and over-long sources are one-line errors."""
        rows = []
        for text in texts:
            if not text:
                raise ValueError("the text to translate is empty")
            if len(text) > self.config.max_src_len:
                raise ValueError(f"{text[:30]!r}... has {len(text)} characters; this model reads at most "
                                 f"{self.config.max_src_len}")
            rows.append(self.src_vocab.encode(text))
        width = max(map(len, rows))
        return torch.tensor([r + [PAD] * (width - len(r)) for r in rows], dtype=torch.long, device=self.device)

    @torch.no_grad()
    def translate_ids(self, src: torch.Tensor, beam: int | None = None, temperature: float = 0.0,
                      top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                      use_cache: bool = True) -> list[str]:
        if beam is not None:
            ys = self.model.beam_search(src, beam, use_cache=use_cache)
        else:
            gen = torch.Generator(device=src.device).manual_seed(seed) if seed is not None else None
            ys = self.model.generate(src, temperature=temperature, top_k=top_k, top_p=top_p, generator=gen,
                                     use_cache=use_cache)
        return [self.tgt_vocab.decode(row.tolist()) for row in ys]

    def translate(self, texts: list[str] | str, beam: int | None = None, temperature: float = 0.0,
                  top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                  use_cache: bool = True) -> list[str] | str:
        """Greedy (default), sampled (temperature > 0, top-k, top-p) or beam-search translations."""
        single = isinstance(texts, str)
        out = self.translate_ids(self.encode_sources([texts] if single else texts), beam, temperature, top_k, top_p,
                                 seed, use_cache)
        return out[0] if single else out

    @torch.no_grad()
    def cross_attention(self, text: str, beam: int | None = None) -> tuple[str, list[torch.Tensor]]:
        """The translation of `text` and each decoder layer's cross-attention weights [H, T_out + 1, S] over it
        (recomputed by teacher forcing on the translation itself, the end token included)."""
        with eval_mode(self):
            src = self.encode_sources([text])
            hyp = self.translate_ids(src, beam)[0]
            tgt = torch.tensor([[BOS, *self.tgt_vocab.encode(hyp)]], device=self.device)
            return hyp, [w[0] for w in self.model.cross_attention_maps(src, tgt)]

    def forward(self, src, tgt):
        return self.model(src, tgt)

    # --- optimisation

    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.AdamW(weight_decay_groups(self.model.parameters(), hp.weight_decay), lr=hp.learning_rate,
                                betas=(0.9, 0.98))
        total, progress = decay_plan(self.trainer, clock_first=True)  # a wall-clock budget sets the decay's end
        schedule = WarmupCosine(opt, total, hp.warmup_steps, floor=hp.min_lr_ratio, progress=progress)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        restore_schedule_step(checkpoint)

    def _loss(self, batch):
        src, tgt = batch
        logits = self.model(src, tgt[:, :-1])
        target = tgt[:, 1:]
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=PAD)
        return loss, int((target != PAD).sum())

    def training_step(self, batch, batch_idx):
        loss, n = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        return loss

    # --- evaluation

    def _collect(self, stage: str, batch, beam: int | None = None):
        src, tgt = batch
        refs = [self.tgt_vocab.decode(row.tolist()) for row in tgt]
        sources = [self.src_vocab.decode(row.tolist()) for row in src]
        out = self._outputs.setdefault(stage, [])
        greedy = self.translate_ids(src)
        beamed = self.translate_ids(src, beam) if beam else [None] * len(refs)
        out += list(zip(sources, refs, greedy, beamed, strict=True))

    def on_validation_epoch_start(self) -> None:
        self._outputs["val"] = []

    def validation_step(self, batch, batch_idx):
        loss, n = self._loss(batch)
        self.log("val/loss", loss, batch_size=n, prog_bar=True, sync_dist=True)
        self._collect("val", batch)

    def on_validation_epoch_end(self) -> None:
        rows = self._outputs.pop("val", [])
        if not rows:
            return
        _, refs, hyps, _ = zip(*rows, strict=True)
        self.log("val/exact_match", exact_match(list(hyps), list(refs)), prog_bar=True)
        if self.trainer.sanity_checking or self.trainer.global_rank != 0:
            return
        from genlab.figures.seq2seq import cross_attention_figure
        from genlab.reporting import log_image, log_table, never_fatal

        with never_fatal(self, "translation examples and attention figures"):  # reports must not cost the run
            log_table(self.trainer, "examples/translations", ["source", "reference", "hypothesis"],
                      [list(r[:3]) for r in rows[: self.hparams.n_examples]])
            source = self.hparams.attention_example or rows[0][0]
            hyp, weights = self.cross_attention(source)
            log_image(self.trainer, "attention/cross", cross_attention_figure(source, hyp, weights),
                      caption=f"{source} -> {hyp}")

    def on_test_epoch_start(self) -> None:
        self._outputs["test"] = []

    def test_step(self, batch, batch_idx):
        loss, n = self._loss(batch)
        self.log("test/loss", loss, batch_size=n, sync_dist=True)
        self._collect("test", batch, self.hparams.test_beam)

    def on_test_epoch_end(self) -> None:
        rows = self._outputs.pop("test", [])
        if not rows:
            return
        _, refs, greedy, beamed = (list(c) for c in zip(*rows, strict=True))
        tok = self.hparams.bleu_tokenize
        self.log("test/bleu", corpus_bleu(greedy, refs, tok))
        self.log("test/exact_match", exact_match(greedy, refs))
        self.log("test/bleu_beam", corpus_bleu(beamed, refs, tok))
        self.log("test/exact_match_beam", exact_match(beamed, refs))
        self.test_rows = rows  # for scripts that want the translations themselves


__all__ = ["Translator"]
