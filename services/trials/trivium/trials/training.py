"""A fine-tune arm's one-off training cost: the adapter's recorded training time at the policy's
GPU-hour price.

An arm on an adapter road (`finetune`, `finetune+rag`) serves the adapter its policy entry names
(a variant's own, else the feature's). Its registry metadata records `timings.train_seconds`
when the fine-tune measured it (`trivium.model.finetune`); the arm's upstream, when self-hosted,
is priced per GPU hour (`upstreams.<name>.price.gpu_hour_usd`). The cost is
train_seconds / 3600 x gpu_hour_usd. Without either there is no cost, said in one log line per
arm, since a hosted per-token price says nothing about what training took.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from trivium.common.errors import TriviumError
from trivium.trials.arms import ArmSpec

__all__ = ("AdapterReader", "gpu_hour_price", "train_seconds", "training_costs")

log = logging.getLogger(__name__)


class AdapterReader(Protocol):
    """`trivium.trials.client.GatewayClient.adapter_version`."""

    async def adapter_version(self, name: str, selector: str) -> dict[str, Any]: ...


def gpu_hour_price(policy: Mapping[str, Any], upstream: str | None) -> float | None:
    """The upstream's USD per GPU hour in `GET /v1/policy`'s JSON; None for a per-token price,
    no price, or an unknown upstream."""
    entry = (policy.get("upstreams") or {}).get(upstream) if upstream is not None else None
    price = entry.get("price") if isinstance(entry, Mapping) else None
    value = price.get("gpu_hour_usd") if isinstance(price, Mapping) else None
    return _number(value)


def train_seconds(metadata: Mapping[str, Any]) -> float | None:
    """`timings.train_seconds` of an adapter version's metadata, when it records one."""
    timings = metadata.get("timings")
    seconds = _number(timings.get("train_seconds")) if isinstance(timings, Mapping) else None
    return seconds if seconds is not None and seconds >= 0 else None


async def training_costs(
    client: AdapterReader, policy: Mapping[str, Any], arms: Sequence[ArmSpec]
) -> dict[str, float]:
    """Arm name -> its adapter's training cost in USD, for the arms where both are known."""
    costs: dict[str, float] = {}
    for arm in arms:
        if arm.adapter is None:
            continue
        cost, why = await _cost(client, policy, arm, arm.adapter)
        if cost is None:
            log.info(
                "no training cost for this arm",
                extra={"arm": arm.name, "adapter": arm.adapter, "reason": why},
            )
        else:
            costs[arm.name] = cost
    return costs


async def _cost(
    client: AdapterReader, policy: Mapping[str, Any], arm: ArmSpec, adapter: str
) -> tuple[float | None, str]:
    price = gpu_hour_price(policy, arm.upstream)
    if price is None:
        return None, f"upstream {arm.upstream!r} has no GPU-hour price (price.gpu_hour_usd)"
    name, _, selector = adapter.partition("@")
    try:
        version = await client.adapter_version(name, selector or "production")
    except (TriviumError, OSError) as exc:
        return None, f"adapter metadata not read: {exc}"
    metadata = version.get("metadata")
    seconds = train_seconds(metadata) if isinstance(metadata, Mapping) else None
    if seconds is None:
        return None, f"{name}@{version.get('version')} records no timings.train_seconds"
    return seconds / 3600 * price, "priced"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
