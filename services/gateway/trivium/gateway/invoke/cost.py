"""What one answer cost, from the upstream's price in the policy."""

from __future__ import annotations

from trivium.gateway.policy.model import GpuPrice, TokenPrice

__all__ = ("answer_cost",)


def answer_cost(
    price: TokenPrice | GpuPrice | None, prompt_tokens: int, completion_tokens: int
) -> float:
    """USD: list price per 1k tokens, or the GPU hour amortised over the tokens it serves."""
    if price is None:
        return 0.0
    if isinstance(price, TokenPrice):
        return (
            prompt_tokens * price.prompt_per_1k + completion_tokens * price.completion_per_1k
        ) / 1000.0
    return (prompt_tokens + completion_tokens) * price.gpu_hour_usd / price.tokens_per_hour
