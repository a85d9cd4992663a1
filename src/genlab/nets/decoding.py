"""What every translator net shares: the special token ids and one implementation of decoding (greedy / sampled
generation and beam search) over a few hooks each net implements.

`TranslationNet` is the interface of genlab's translators (nets/seq2seq.py's transformer, nets/gru_seq2seq.py's
GRU encoder-decoder, nets/decoder_only.py's decoder-only baseline), so that one LightningModule can hold any of
them:

    forward(src [B, S], tgt [B, T]) -> logits [B, T, V_tgt]   (teacher forcing; tgt starts with BOS, logits[:, t]
                                                                predicts tgt[:, t + 1]; src is PAD-padded)
    generate(src, max_len, temperature, top_k, top_p, generator, use_cache) -> ids [B, <= max_len]
    beam_search(src, beam, max_len, use_cache) -> ids [B, <= max_len]
    cross_attention_maps(src, tgt) -> per layer [B, H, T, S]: how each target position reads the source

The hooks generate and beam_search call (each net writes its own):

    encode(src) -> (memory, src_mask)     what decoding reads at every step, computed once per source; memory is
                                          a tensor or a tuple of tensors, each with the batch first (beam search
                                          repeats every row `beam` times); src_mask a tensor, batch first
    step_logits(ys, memory, src_mask, cache) -> [B, V]   the logits of the token after ys [B, t] (BOS first);
                                          with a cache, only the tokens it has not seen yet are new
    new_cache(batch) -> cache             what incremental decoding keeps (each net's own kind)
    reorder_cache(cache, index)           keep batch rows `index`, in that order (beam search's survivors)
    max_tgt_len                           the longest target, BOS and EOS included
"""

from __future__ import annotations

import torch
import torch.nn as nn

from genlab.nets.transformer import check_sampling_args, sample_next

PAD, BOS, EOS = 0, 1, 2
N_SPECIAL = 3


def repeat_rows(x, k: int):
    """Each batch row k times in a row (row b becomes rows b*k .. b*k+k-1); x a tensor or a tuple of tensors."""
    if isinstance(x, torch.Tensor):
        return x.repeat_interleave(k, 0)
    return tuple(repeat_rows(t, k) for t in x)


class TranslationNet(nn.Module):
    """Source ids [B, S] and target ids [B, T] -> next-token logits [B, T, V_tgt], with generate and beam_search.

    A subclass sets `self.config` (with max_tgt_len) and implements forward, cross_attention_maps, encode,
    step_logits and new_cache; reorder_cache defaults to `cache.reorder(index)`.
    """

    # --- the hooks

    @property
    def max_tgt_len(self) -> int:
        return self.config.max_tgt_len

    def encode(self, src: torch.Tensor):
        raise NotImplementedError

    def step_logits(self, ys: torch.Tensor, memory, src_mask: torch.Tensor, cache) -> torch.Tensor:
        raise NotImplementedError

    def new_cache(self, batch: int):
        raise NotImplementedError

    def reorder_cache(self, cache, index: torch.Tensor) -> None:
        cache.reorder(index)

    def cross_attention_maps(self, src: torch.Tensor, tgt: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    # --- decoding

    def _step_logits(self, ys, memory, src_mask, cache):
        """step_logits with PAD and BOS never chosen: they are never targets (an untrained net would emit them)."""
        logits = self.step_logits(ys, memory, src_mask, cache)
        return logits.index_fill(-1, torch.tensor([PAD, BOS], device=logits.device), float("-inf"))

    @torch.no_grad()
    def generate(self, src: torch.Tensor, max_len: int | None = None, temperature: float = 0.0,
                 top_k: int | None = None, top_p: float | None = None, generator: torch.Generator | None = None,
                 use_cache: bool = True) -> torch.Tensor:
        """Target ids [B, <= max_len] (BOS first; EOS then PAD once a row is done), one token at a time.

        temperature 0 is greedy (argmax); otherwise temperature, then top-k, then top-p, then a draw
        (the semantics of `genlab generate`).
        """
        max_len = self.max_tgt_len if max_len is None else min(max_len, self.max_tgt_len)
        check_sampling_args(max_len, temperature, top_k, top_p)
        memory, src_mask = self.encode(src)
        ys = torch.full((src.size(0), 1), BOS, dtype=torch.long, device=src.device)
        done = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
        cache = self.new_cache(src.size(0)) if use_cache else None
        while ys.size(1) < max_len and not done.all():
            logits = self._step_logits(ys, memory, src_mask, cache)
            nxt = sample_next(logits, temperature, top_k, top_p, generator).squeeze(1)
            nxt = nxt.masked_fill(done, PAD)
            ys = torch.cat([ys, nxt[:, None]], dim=1)
            done |= nxt == EOS
        return ys

    @torch.no_grad()
    def beam_search(self, src: torch.Tensor, beam: int = 4, max_len: int | None = None,
                    use_cache: bool = True) -> torch.Tensor:
        """The most likely target found by beam search of width `beam` (score: sum of log-probabilities),
        per source row; ids [B, <= max_len] as generate() returns them. Width 1 is greedy decoding.

        A hypothesis that emits EOS is finished; a source is done when its best finished hypothesis scores at
        least its best open one (scores only fall as a hypothesis grows, so no open one can still beat it).
        Stopping after `beam` finished hypotheses instead would let unlikely ones that end early (EOS among the
        top 2 * beam candidates) end the search before the likely one finishes.
        """
        if beam < 1:
            raise ValueError(f"beam width must be >= 1, got {beam}")
        max_len = self.max_tgt_len if max_len is None else min(max_len, self.max_tgt_len)
        B, K, dev = src.size(0), beam, src.device
        memory, src_mask = self.encode(src)
        memory, src_mask = repeat_rows(memory, K), src_mask.repeat_interleave(K, 0)
        ys = torch.full((B * K, 1), BOS, dtype=torch.long, device=dev)
        scores = torch.full((B, K), float("-inf"), device=dev)
        scores[:, 0] = 0.0  # all K rows start identical: only the first is open at the start
        finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]
        done = [False] * B
        cache = self.new_cache(B * K) if use_cache else None
        while ys.size(1) < max_len and not all(done):
            logp = self._step_logits(ys, memory, src_mask, cache).float().log_softmax(-1)  # [B*K, V]
            V = logp.size(-1)
            cand = (scores[:, :, None] + logp.view(B, K, V)).view(B, K * V)
            top_scores, top_idx = cand.topk(min(2 * K, K * V), dim=-1)
            new_rows, new_tokens, new_scores = [], [], []
            for b in range(B):
                rows, toks, scs = [], [], []
                for s, i in zip(top_scores[b].tolist(), top_idx[b].tolist(), strict=True):
                    if s == float("-inf"):
                        break
                    row, tok = b * K + i // V, i % V
                    if tok == EOS:
                        if not done[b]:
                            finished[b].append((s, ys[row, 1:].tolist()))
                    elif len(rows) < K:
                        rows.append(row), toks.append(tok), scs.append(s)
                    if len(rows) == K:
                        break
                if done[b] or not rows:
                    done[b] = True
                    rows, toks, scs = [b * K] * K, [PAD] * K, [float("-inf")] * K
                else:
                    pad = K - len(rows)
                    rows, toks, scs = rows + [rows[0]] * pad, toks + [toks[0]] * pad, scs + [float("-inf")] * pad
                    best_finished = max((f[0] for f in finished[b]), default=float("-inf"))
                    done[b] = best_finished >= scs[0]  # no open hypothesis can still beat it
                new_rows += rows
                new_tokens += toks
                new_scores.append(scs)
            index = torch.tensor(new_rows, device=dev)
            ys = torch.cat([ys.index_select(0, index), torch.tensor(new_tokens, device=dev)[:, None]], dim=1)
            scores = torch.tensor(new_scores, device=dev)
            if cache is not None:
                self.reorder_cache(cache, index)
        best = []
        for b in range(B):
            if finished[b]:
                seq = max(finished[b], key=lambda f: f[0])[1] + [EOS]
            else:  # nothing finished within max_len: the best open hypothesis
                seq = ys[b * K + int(scores[b].argmax()), 1:].tolist()
            best.append([BOS] + seq)
        width = max(len(s) for s in best)
        return torch.tensor([s + [PAD] * (width - len(s)) for s in best], dtype=torch.long, device=dev)


__all__ = ["PAD", "BOS", "EOS", "N_SPECIAL", "TranslationNet", "repeat_rows"]
