"""The framework's questions, one small function each. A rule reads the feature's facts and
answers None (it does not apply) or what it found; its docstring's first line is the rule as
the framework states it, and the report cites the function by name.

Rules favour or exclude arms and ask for policy changes; they never pick the winner alone:
`report.py` weighs them with the requirement checks and the ROI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from trivium.common.contracts.decision import KNOWLEDGE_PACES, Requirements, RuleOutcome
from trivium.gateway.decision.roads import ADAPTER_ROADS, RETRIEVAL_ROADS, arms_on
from trivium.gateway.policy.model import Feature

__all__ = (
    "HIGH_VOLUME",
    "RULES",
    "TRAINING_CYCLE",
    "Facts",
    "Rule",
    "a_need_for_citations_requires_a_retrieval_road",
    "apply_rules",
    "knowledge_that_changes_faster_than_a_training_cycle_favours_retrieval",
    "regulated_features_require_a_verifier_and_the_review_hold",
    "strict_format_or_labels_at_high_volume_favour_an_adapter",
    "where_one_road_alone_misses_a_hybrid_may_meet",
)

TRAINING_CYCLE = "monthly"
"""How often an adapter can be retrained, collected for and evaluated: at best monthly."""
HIGH_VOLUME = 100_000
"""Requests a month from which an adapter's cheaper requests are worth its training."""
HYBRID_ROAD = "finetune+rag"


@dataclass(frozen=True)
class Facts:
    """What the rules read: the feature, its needs, each arm's road, and what each arm misses
    (requirements by their checks, plus citations and verification by its road)."""

    name: str
    feature: Feature
    needs: Requirements
    roads: Mapping[str, str | None]
    misses: Mapping[str, frozenset[str]]


Rule = Callable[[Facts], RuleOutcome | None]


def _outcome(rule: Rule, finding: str, **effects: list[str]) -> RuleOutcome:
    text = (rule.__doc__ or rule.__name__).strip().splitlines()[0]
    return RuleOutcome(
        rule=rule.__name__,
        text=text,
        citation=f"{__name__}:{rule.__name__}",
        finding=finding,
        **effects,
    )


def knowledge_that_changes_faster_than_a_training_cycle_favours_retrieval(
    facts: Facts,
) -> RuleOutcome | None:
    """Knowledge that changes faster than a training cycle favours retrieval."""
    pace = facts.needs.knowledge_changes
    if pace is None or KNOWLEDGE_PACES.index(pace) <= KNOWLEDGE_PACES.index(TRAINING_CYCLE):
        return None
    return _outcome(
        knowledge_that_changes_faster_than_a_training_cycle_favours_retrieval,
        f"knowledge changes {pace}, an adapter is retrained {TRAINING_CYCLE} at best: what it "
        "learned goes stale between trainings, while an index is updated as the facts change",
        favours=arms_on(dict(facts.roads), RETRIEVAL_ROADS),
    )


def a_need_for_citations_requires_a_retrieval_road(facts: Facts) -> RuleOutcome | None:
    """A need for citations or provenance requires a retrieval road."""
    if not facts.needs.needs_citations:
        return None
    return _outcome(
        a_need_for_citations_requires_a_retrieval_road,
        "answers must cite their sources; only a road that retrieves passages has any to cite",
        excludes=[arm for arm, road in facts.roads.items() if road not in RETRIEVAL_ROADS],
    )


def strict_format_or_labels_at_high_volume_favour_an_adapter(
    facts: Facts,
) -> RuleOutcome | None:
    """Strict format or labels, at high volume, favour an adapter."""
    needs = facts.needs
    volume = needs.monthly_requests
    if needs.output_format not in ("structured", "label") or volume is None:
        return None
    if volume < HIGH_VOLUME:
        return None
    return _outcome(
        strict_format_or_labels_at_high_volume_favour_an_adapter,
        f"output is {needs.output_format} at {volume:,} requests a month (>= {HIGH_VOLUME:,}): "
        "an adapter learns the format once and sends short prompts, where a prompt or RAG "
        "road pays for the instructions and examples on every request",
        favours=arms_on(dict(facts.roads), ADAPTER_ROADS),
    )


def regulated_features_require_a_verifier_and_the_review_hold(
    facts: Facts,
) -> RuleOutcome | None:
    """Regulated features require a verifier and the review hold."""
    if not facts.needs.regulated:
        return None
    retrieval = facts.feature.retrieval
    actions = []
    if retrieval is None or retrieval.min_groundedness is None:
        actions.append("set retrieval.min_groundedness: the verifier scores every answer")
    if retrieval is None or retrieval.on_fail != "hold":
        actions.append("set retrieval.on_fail: hold: a poorly grounded answer waits for a reviewer")
    return _outcome(
        regulated_features_require_a_verifier_and_the_review_hold,
        "a regulated answer must be checked against its sources before it is sent; only a "
        "retrieval road has sources to verify against",
        excludes=[arm for arm, road in facts.roads.items() if road not in RETRIEVAL_ROADS],
        actions=actions,
    )


def where_one_road_alone_misses_a_hybrid_may_meet(facts: Facts) -> RuleOutcome | None:
    """Hybrids where one road alone misses."""
    if any(not missed for missed in facts.misses.values()):
        return None
    if HYBRID_ROAD in facts.roads.values():
        return None  # measured already: its checks speak for it
    for adapter in arms_on(dict(facts.roads), frozenset({"finetune"})):
        for grounded in arms_on(dict(facts.roads), RETRIEVAL_ROADS - ADAPTER_ROADS):
            if facts.misses[adapter] & facts.misses[grounded]:
                continue
            return _outcome(
                where_one_road_alone_misses_a_hybrid_may_meet,
                f"no road meets every requirement alone: {adapter} misses "
                f"{_names(facts.misses[adapter])}, which {grounded} meets; {grounded} misses "
                f"{_names(facts.misses[grounded])}, which {adapter} meets",
                actions=[
                    f"trial the {HYBRID_ROAD} road: the adapter answering from retrieved passages"
                ],
            )
    return None


def _names(requirements: frozenset[str]) -> str:
    return ", ".join(sorted(requirements))


RULES: tuple[Rule, ...] = (
    knowledge_that_changes_faster_than_a_training_cycle_favours_retrieval,
    a_need_for_citations_requires_a_retrieval_road,
    strict_format_or_labels_at_high_volume_favour_an_adapter,
    regulated_features_require_a_verifier_and_the_review_hold,
    where_one_road_alone_misses_a_hybrid_may_meet,
)
"""In the order the framework asks them."""


def apply_rules(facts: Facts) -> list[RuleOutcome]:
    return [outcome for rule in RULES if (outcome := rule(facts)) is not None]
