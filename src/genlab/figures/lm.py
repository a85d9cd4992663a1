"""What a trained language model writes: one sample per temperature from a fixed prompt and seed."""

from __future__ import annotations

from genlab.runtime import eval_mode


def sample_rows(model, prompt: str, temperatures: list[float], max_new_tokens: int, seed: int) -> list[list]:
    """[[temperature, prompt + sample], ...] from a LanguageModel, in eval mode (its mode restored afterwards).

    The same seed for every temperature, so the rows differ by the temperature alone.
    """
    with eval_mode(model):
        return [[t, model.generate_text(prompt, max_new_tokens, t, seed=seed)] for t in temperatures]
