"""Next-token choice per row: greedy at temperature 0, else temperature + nucleus sampling."""

from __future__ import annotations

import torch

__all__ = ("choose_tokens",)


def choose_tokens(
    logits: torch.Tensor,
    temperatures: list[float],
    top_ps: list[float],
    generators: list[torch.Generator],
) -> list[int]:
    """One token id per row of `logits` ([rows, vocab]), each with its own parameters."""
    chosen: list[int] = []
    for row, (temperature, top_p, generator) in enumerate(
        zip(temperatures, top_ps, generators, strict=True)
    ):
        scores = logits[row].float()
        if temperature <= 0:
            chosen.append(int(torch.argmax(scores)))
            continue
        probs = torch.softmax(scores / temperature, dim=-1)
        if top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            cumulative = torch.cumsum(sorted_probs, dim=-1)
            keep = cumulative - sorted_probs < top_p  # always keeps the most likely token
            sorted_probs = torch.where(keep, sorted_probs, torch.zeros_like(sorted_probs))
            pick = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)
            chosen.append(int(order[pick]))
        else:
            chosen.append(int(torch.multinomial(probs, 1, generator=generator)))
    return chosen
