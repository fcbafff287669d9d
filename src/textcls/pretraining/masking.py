"""Masked-LM inputs (Devlin et al. 2019): choose 15 % of the tokens (or of the words, with whole-word
masking every piece of a chosen word), never a special token or padding; of the chosen, 80 % become
[MASK], 10 % a random token and 10 % stay as they are; the labels are the chosen tokens' ids and
-100 elsewhere.

transformers' ``DataCollatorForLanguageModeling`` drops the 80/10/10 rule under whole-word masking
(it then masks every chosen piece), so this one function does both the same way.
"""

from __future__ import annotations

import torch

IGNORE = -100


def mask_tokens(
    input_ids: torch.Tensor,
    maskable: torch.Tensor,
    mask_id: int,
    vocab_size: int,
    probability: float = 0.15,
    word_ids: torch.Tensor | None = None,
    replace: tuple[float, float] = (0.8, 0.1),
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked inputs, labels) for a padded batch [B, T].

    ``maskable`` is False for special tokens and padding. ``word_ids`` (same shape, one id per word
    within a row, -1 where not maskable) turns on whole-word masking: each word is chosen with
    ``probability`` and all its pieces follow. ``replace`` = (share to [MASK], share to random)."""
    maskable = maskable.bool()
    if word_ids is None:
        chosen = torch.rand(input_ids.shape, generator=generator) < probability
    else:
        words = int(word_ids.max()) + 1 if word_ids.numel() else 0
        picked = torch.rand((input_ids.size(0), max(1, words)), generator=generator) < probability
        chosen = picked.gather(1, word_ids.clamp(min=0))
    chosen &= maskable
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE))
    draw = torch.rand(input_ids.shape, generator=generator)
    to_mask = chosen & (draw < replace[0])
    to_random = chosen & (draw >= replace[0]) & (draw < replace[0] + replace[1])
    inputs = input_ids.clone()
    inputs[to_mask] = mask_id
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
    inputs[to_random] = random_ids[to_random]
    return inputs, labels
