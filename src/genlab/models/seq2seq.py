"""Translation: the LightningModule around a translator net of genlab.nets (transformer, GRU or decoder-only).

Training is teacher forcing (the decoder reads the reference target shifted by one and predicts each next
token). Validation logs the loss and, on its first `val_bleu_sentences` pairs decoded greedily, BLEU, chrF and exact
match, a table of source / reference / hypothesis and a picture of the cross-attention weights per head. Testing
adds corpus BLEU (sacreBLEU, its signature printed) and chrF, greedy and by beam search (genlab.metrics.translation);
the picture is genlab.figures.seq2seq's.

What a checkpoint alone needs to translate (`genlab translate`): the net's sizes are hyper-parameters (vocabulary
sizes and lengths, a few integers; a character vocabulary's characters too, as before), and both tokenizers travel in
the state_dict as the extra state of the `tokenizers` submodule (plain str/bytes: a sentencepiece model is its
serialized proto), so every loader (load_module, load_from_checkpoint, a resumed fit) restores them with the
weights, weights_only=True, and the logged hyper-parameters stay small.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genlab.data.tokenizers import CharTokenizer, tokenizer_from_state
from genlab.errors import ConfigError
from genlab.metrics.translation import bleu_with_signature, chrf_with_signature, corpus_chrf, exact_match
from genlab.models.base import GenlabModule
from genlab.nets.seq2seq import ARCHITECTURES, BOS, EOS, PAD, Seq2SeqConfig, build_translation_net
from genlab.optim import WarmupCosine, decay_plan, restore_schedule_step, weight_decay_groups
from genlab.runtime import eval_mode

# positions of a model given its vocabularies but no data (no lengths to take): the former defaults
NO_DATA_SRC_LEN, NO_DATA_TGT_LEN = 64, 32


class Tokenizers(torch.nn.Module):
    """The source and target tokenizers, saved in the state_dict as this module's extra state (their plain `state`
    dicts). A state_dict without it (checkpoints from before subword tokens) keeps the character tokenizers built
    from the hyper-parameters."""

    def __init__(self):
        super().__init__()
        self.src = self.tgt = None

    def set(self, src, tgt) -> None:
        self.src, self.tgt = src, tgt

    @property
    def state(self) -> dict:
        return {} if self.src is None else {"src": self.src.state, "tgt": self.tgt.state}

    def get_extra_state(self) -> dict:
        return self.state

    def set_extra_state(self, state: dict) -> None:
        if state:
            self.set(tokenizer_from_state(state["src"], "source"), tokenizer_from_state(state["tgt"], "target"))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        key = prefix + "_extra_state"
        if key in state_dict:
            self.set_extra_state(state_dict[key])
        elif self.src is None:
            missing_keys.append(key)


class Translator(GenlabModule):
    """A translator net (an encoder-decoder transformer by default) with its two tokenizers (characters or subword
    pieces, from the data).

    Args:
        architecture: "transformer" (encoder-decoder with cross-attention), "gru" (the course's first translator:
            bidirectional GRU encoder, GRU decoder with attention) or "decoder_only" (one causal stack over source
            and target, no cross-attention): genlab.nets.seq2seq.build_translation_net.
        src_vocab, tgt_vocab: a character vocabulary's characters, in id order; None: the tokenizers are taken from
            the datamodule (Seq2SeqDataModule) at setup and stored in every checkpoint.
        src_vocab_size, tgt_vocab_size: the tokenizers' sizes (ids, specials included); None: from the datamodule
            at setup, then stored here so that a checkpoint rebuilds the net before its weights and tokenizers load.
        d_model, n_head, n_enc_layer, n_dec_layer, d_ff, dropout, positional: see genlab.nets.seq2seq.Seq2SeqConfig.
        max_src_len, max_tgt_len: positions of each side (tokens; the target's with BOS and EOS); None: the data's
            longest (Seq2SeqDataModule.max_src_len / max_tgt_len) at setup, then stored here. A value smaller than
            the data's is refused at setup; a longer text is refused at translation time.
        learning_rate: peak AdamW rate after `warmup_steps` linear steps, then cosine decay to
            min_lr_ratio * peak at the end of training (the Trainer's max_time if set, else its step budget).
        weight_decay: AdamW's, on matrices only.
        test_beam: beam width of the test-time beam search (test/bleu_beam, test/chrf_beam, test/exact_match_beam).
        bleu_tokenize: sacreBLEU's tokenizer: "13a" for sentences of words, "char" for character strings
            such as dates (a date is one word, so word 4-grams would not exist).
        n_examples: rows of the validation examples table.
        attention_example: the source shown in the cross-attention picture; None: the first validation source.
        val_bleu_sentences: the first this many validation pairs are decoded greedily at every validation for
            val/bleu, val/chrf, val/exact_match and the examples table; 0: no decoding at validation.
    """

    def __init__(self, src_vocab: str | None = None, tgt_vocab: str | None = None, src_vocab_size: int | None = None,
                 tgt_vocab_size: int | None = None, d_model: int = 128, n_head: int = 4, n_enc_layer: int = 2,
                 n_dec_layer: int = 2, d_ff: int | None = None, dropout: float = 0.1, positional: str = "learned",
                 max_src_len: int | None = None, max_tgt_len: int | None = None, learning_rate: float = 1e-3,
                 min_lr_ratio: float = 0.1, warmup_steps: int = 200, weight_decay: float = 0.01, test_beam: int = 4,
                 bleu_tokenize: str = "13a", n_examples: int = 8, attention_example: str | None = None,
                 val_bleu_sentences: int = 200, architecture: str = "transformer"):
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture {architecture!r} is not one of {', '.join(ARCHITECTURES)}")
        if test_beam < 1:
            raise ValueError(f"test_beam must be >= 1, got {test_beam}")
        if val_bleu_sentences < 0:
            raise ValueError(f"val_bleu_sentences must be >= 0 (0: off), got {val_bleu_sentences}")
        self.save_hyperparameters()
        Seq2SeqConfig(1, 1, d_model, n_head, n_enc_layer, n_dec_layer, d_ff, dropout, positional, max_src_len or 1,
                      max_tgt_len or 1)  # validate the sizes before any data is read
        self.model = None
        self.tokenizers = Tokenizers()
        if src_vocab is not None and tgt_vocab is not None:  # characters (and every checkpoint before subwords)
            self.tokenizers.set(CharTokenizer(src_vocab, "source"), CharTokenizer(tgt_vocab, "target"))
            self.hparams.src_vocab_size, self.hparams.tgt_vocab_size = self.src_vocab.size, self.tgt_vocab.size
        if self.hparams.src_vocab_size is not None and self.hparams.tgt_vocab_size is not None:
            self.hparams.max_src_len = max_src_len or NO_DATA_SRC_LEN
            self.hparams.max_tgt_len = max_tgt_len or NO_DATA_TGT_LEN
            self._build()
        self._outputs: dict[str, list] = {}

    @property
    def src_vocab(self):
        return self.tokenizers.src

    @property
    def tgt_vocab(self):
        return self.tokenizers.tgt

    def _build(self) -> None:
        """The net, from the hyper-parameters (sizes and lengths set)."""
        hp = self.hparams
        self.config = Seq2SeqConfig(hp.src_vocab_size, hp.tgt_vocab_size, hp.d_model, hp.n_head, hp.n_enc_layer,
                                    hp.n_dec_layer, hp.d_ff, hp.dropout, hp.positional, hp.max_src_len,
                                    hp.max_tgt_len)
        self.model = build_translation_net(hp.get("architecture", "transformer"), hp.src_vocab_size, hp.tgt_vocab_size,
                                           hp.d_model, hp.n_head, hp.n_enc_layer, hp.n_dec_layer, hp.d_ff, hp.dropout,
                                           hp.positional, hp.max_src_len, hp.max_tgt_len)

    def _adopt(self, src, tgt) -> None:
        """Take the data's tokenizers: their sizes (and characters) become hyper-parameters."""
        self.tokenizers.set(src, tgt)
        self.hparams.src_vocab_size, self.hparams.tgt_vocab_size = src.size, tgt.size
        if isinstance(src, CharTokenizer) and isinstance(tgt, CharTokenizer):
            self.hparams.src_vocab, self.hparams.tgt_vocab = src.chars, tgt.chars

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        src = getattr(dm, "src_tokenizer", None) or getattr(dm, "src_vocab", None)
        tgt = getattr(dm, "tgt_tokenizer", None) or getattr(dm, "tgt_vocab", None)
        lengths = {"src": getattr(dm, "max_src_len", None), "tgt": getattr(dm, "max_tgt_len", None)}
        hp = self.hparams
        if self.model is None:
            if src is None:
                raise ConfigError("Translator(src_vocab=None) needs a Seq2SeqDataModule (or explicit vocabularies)")
            self._adopt(src, tgt)
            for side in ("src", "tgt"):
                key = f"max_{side}_len"
                if hp[key] is None:
                    hp[key] = lengths[side] or (NO_DATA_SRC_LEN if side == "src" else NO_DATA_TGT_LEN)
                elif lengths[side] is not None and lengths[side] > hp[key]:
                    raise ConfigError(f"the data has {side} sequences of {lengths[side]} tokens > {key}={hp[key]}; "
                                      f"set --model.init_args.{key} {lengths[side]}, or leave it out (null) to take "
                                      "it from the data")
            self._build()
            return
        if src is not None:
            if self.src_vocab is None and (src.size, tgt.size) == (hp.src_vocab_size, hp.tgt_vocab_size):
                self._adopt(src, tgt)  # a resumed fit: the checkpoint's own tokenizers are compared on loading
            elif (src, tgt) != (self.src_vocab, self.tgt_vocab):
                raise ConfigError(f"the data's tokenizers ({src.kind}, {src.size} + {tgt.size} ids) differ from the "
                                  f"model's: ids would mean other {src.kind == 'char' and 'characters' or 'pieces'}; "
                                  "use the data (and tokenizer settings) the model was trained with")
        for side in ("src", "tgt"):
            need, have = lengths[side], getattr(self.config, f"max_{side}_len")
            if need is not None and need > have:
                raise ConfigError(f"the data has {side} sequences of {need} tokens > max_{side}_len={have} of the "
                                  f"model; this model cannot read them (--data.init_args.max_len drops long training "
                                  "pairs, not validation or test ones)")

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        restore_schedule_step(checkpoint)
        saved = checkpoint.get("state_dict", {}).get("tokenizers._extra_state")
        if saved and self.src_vocab is not None and saved != self.tokenizers.state:
            raise ConfigError("the checkpoint's tokenizers differ from the data's: ids would mean other tokens; "
                              "resume with the data (and tokenizer settings) the checkpoint was trained with")

    # --- translating

    def encode_sources(self, texts: list[str]) -> torch.Tensor:
        """PAD-padded source ids [B, S]; unknown characters and over-long sources are one-line errors."""
        rows = []
        for text in texts:
            if not text:
                raise ValueError("the text to translate is empty")
            ids = self.src_vocab.encode(text)
            if len(ids) > self.config.max_src_len:
                raise ValueError(f"{text[:30]!r}... has {len(ids)} tokens; this model reads at most "
                                 f"{self.config.max_src_len} (split it into shorter sentences)")
            rows.append(ids)
        width = max(map(len, rows))
        return torch.tensor([r + [PAD] * (width - len(r)) for r in rows], dtype=torch.long, device=self.device)

    @torch.no_grad()
    def search(self, src: torch.Tensor, beam: int | None = None, temperature: float = 0.0, top_k: int | None = None,
               top_p: float | None = None, seed: int | None = None, use_cache: bool = True) -> torch.Tensor:
        """Target ids [B, <= max_tgt_len] (BOS first): beam search of width `beam`, else greedy or sampled."""
        if beam is not None:
            return self.model.beam_search(src, beam, use_cache=use_cache)
        gen = torch.Generator(device=src.device).manual_seed(seed) if seed is not None else None
        return self.model.generate(src, temperature=temperature, top_k=top_k, top_p=top_p, generator=gen,
                                   use_cache=use_cache)

    @torch.no_grad()
    def translate_ids(self, src: torch.Tensor, beam: int | None = None, temperature: float = 0.0,
                      top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                      use_cache: bool = True) -> list[str]:
        ys = self.search(src, beam, temperature, top_k, top_p, seed, use_cache)
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
        hyp, _, weights = self._attention(text, beam)
        return hyp, weights

    @torch.no_grad()
    def _attention(self, text: str, beam: int | None = None) -> tuple[str, list[int], list[torch.Tensor]]:
        """(translation, its token ids, the weights): the search's own ids are read back, not the translation
        re-encoded (subword pieces of decoded text can differ from those generated, and outnumber the positions)."""
        with eval_mode(self):
            src = self.encode_sources([text])
            ids = [i for i in self.search(src, beam)[0].tolist()[1:] if i != PAD]
            ids = (ids[: ids.index(EOS)] if EOS in ids else ids)[: self.config.max_tgt_len - 1]
            tgt = torch.tensor([[BOS, *ids]], device=self.device)
            return self.tgt_vocab.decode(ids), ids, [w[0] for w in self.model.cross_attention_maps(src, tgt)]

    def attention_figure(self, text: str, beam: int | None = None):
        """(translation, the cross-attention picture of `text`), its axes labelled with the tokens (characters or
        subword pieces) of the source and of the translation."""
        from genlab.figures.seq2seq import cross_attention_figure

        hyp, ids, weights = self._attention(text, beam)
        src_labels = self.src_vocab.pieces(self.src_vocab.encode(text))
        return hyp, cross_attention_figure(text, hyp, weights, src_labels, self.tgt_vocab.pieces(ids))

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

    def _collect(self, stage: str, batch, beam: int | None = None, limit: int | None = None):
        """Decode the batch's sources (the first `limit` rows of the stage, counted across batches)."""
        src, tgt = batch
        out = self._outputs.setdefault(stage, [])
        if limit is not None:
            src, tgt = src[: max(0, limit - self._seen[stage])], tgt[: max(0, limit - self._seen[stage])]
            self._seen[stage] += len(batch[0])
            if len(src) == 0:
                return
        refs = [self.tgt_vocab.decode(row.tolist()) for row in tgt]
        sources = [self.src_vocab.decode(row.tolist()) for row in src]
        greedy = self.translate_ids(src)
        beamed = self.translate_ids(src, beam) if beam else [None] * len(refs)
        out += list(zip(sources, refs, greedy, beamed, strict=True))

    def on_validation_epoch_start(self) -> None:
        self._outputs["val"], self._seen = [], {"val": 0}

    def validation_step(self, batch, batch_idx):
        loss, n = self._loss(batch)
        self.log("val/loss", loss, batch_size=n, prog_bar=True, sync_dist=True)
        if self.hparams.val_bleu_sentences:
            self._collect("val", batch, limit=self.hparams.val_bleu_sentences)
        elif batch_idx == 0:  # the first source, for the attention picture
            self._outputs["val"].append((self.src_vocab.decode(batch[0][0].tolist()), None, None, None))

    def on_validation_epoch_end(self) -> None:
        rows = self._outputs.pop("val", [])
        if not rows:
            return
        decoded = [r for r in rows if r[2] is not None]
        if decoded:
            _, refs, hyps, _ = (list(c) for c in zip(*decoded, strict=True))
            self.log("val/exact_match", exact_match(hyps, refs), prog_bar=True)
            self.log("val/bleu", bleu_with_signature(hyps, refs, self.hparams.bleu_tokenize)[0])
            self.log("val/chrf", corpus_chrf(hyps, refs))
        if self.trainer.sanity_checking or self.trainer.global_rank != 0:
            return
        from genlab.reporting import log_image, log_table, never_fatal

        with never_fatal(self, "translation examples and attention figures"):  # reports must not cost the run
            if decoded:
                log_table(self.trainer, "examples/translations", ["source", "reference", "hypothesis"],
                          [list(r[:3]) for r in decoded[: self.hparams.n_examples]])
            source = self.hparams.attention_example or rows[0][0]
            hyp, figure = self.attention_figure(source)
            log_image(self.trainer, "attention/cross", figure, caption=f"{source} -> {hyp}")

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
        bleu, signature = bleu_with_signature(greedy, refs, tok)
        chrf, chrf_signature = chrf_with_signature(greedy, refs)
        self.log("test/bleu", bleu)
        self.log("test/chrf", chrf)
        self.log("test/exact_match", exact_match(greedy, refs))
        self.log("test/bleu_beam", bleu_with_signature(beamed, refs, tok)[0])
        self.log("test/chrf_beam", corpus_chrf(beamed, refs))
        self.log("test/exact_match_beam", exact_match(beamed, refs))
        if self.trainer.global_rank == 0:
            print(f"sacreBLEU signature: {signature} (beam {self.hparams.test_beam} for test/bleu_beam); chrF: "
                  f"{chrf_signature}")
        self.test_rows = rows  # for scripts that want the translations themselves
        self.signatures = {"bleu": signature, "chrf": chrf_signature}


__all__ = ["Tokenizers", "Translator"]
