"""Warnings: settings a valid policy may hold but that are likely mistakes.

Each rule is a small function from a valid `Policy` (arms computed) to the warnings it finds,
each named by the dotted path of the setting to look at. `policy check` and the gateway's
`POST /v1/policy:validate` run the same rules (`lint`); a warning never stops a policy loading.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from trivium.gateway.policy.errors import PolicyIssue
from trivium.gateway.policy.model import MODEL_FREE, Arm, Feature, Policy

__all__ = ("RULES", "lint", "served_arms")

Rule = Callable[[Policy], Iterator[PolicyIssue]]


def lint(policy: Policy) -> list[PolicyIssue]:
    """Every warning of every rule, in the file's feature order, rule by rule."""
    return [issue for rule in RULES for issue in rule(policy)]


def served_arms(name: str, feature: Feature) -> list[Arm]:
    """The arms requests are assigned to: each variant above weight 0, else the feature's own."""
    live = [
        variant
        for variant, spec in feature.variants.items()
        if spec.weight > 0 or spec.rollout is not None
    ]
    if not live:
        return [feature.arm(name)]
    return [feature.arm(name, variant) for variant in live]


def unused_zero_weight_variant(policy: Policy) -> Iterator[PolicyIssue]:
    """A variant at weight 0 gets no traffic; unless a fallback or shadow entry names it,
    nothing ever runs it."""
    for name, feature in policy.features.items():
        for variant, spec in feature.variants.items():
            if (
                spec.weight == 0
                and spec.rollout is None  # its rollout gives it traffic
                and variant not in (*feature.fallback, *feature.shadow)
            ):
                yield PolicyIssue(
                    f"features.{name}.variants.{variant}.weight",
                    "is 0 and no fallback or shadow entry names this variant: only a trial runs it",
                )


def fallback_on_the_same_upstream(policy: Policy) -> Iterator[PolicyIssue]:
    """For each arm that serves traffic, its fallback chain as the gateway runs it (repeats and
    the arm itself left out): when it has entries and every one calls the arm's own upstream,
    none survives that upstream's death. (A road entry always runs on the arm's upstream, so
    it only covers a failure of the road's other parts, e.g. the retriever; the extractive
    road calls no model, so it survives.)"""
    for name, feature in policy.features.items():
        stranded: dict[str, list[str]] = {}
        for arm in served_arms(name, feature):
            chain = feature.fallback_arms(arm)
            if chain and all(
                entry.upstream == arm.upstream and entry.route not in MODEL_FREE for entry in chain
            ):
                stranded.setdefault(arm.upstream, []).append(arm.variant or "")
        for upstream, variants in stranded.items():
            named = [variant for variant in variants if variant]
            arms = f"variant{'s' if len(named) > 1 else ''} {', '.join(named)}: " if named else ""
            yield PolicyIssue(
                f"features.{name}.fallback",
                f"{arms}every fallback runs on upstream "
                f"{upstream!r} too, so none survives that upstream's death; "
                "add a variant on another upstream, or the extractive road",
            )


RULES: tuple[Rule, ...] = (
    unused_zero_weight_variant,
    fallback_on_the_same_upstream,
)
