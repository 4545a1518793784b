"""The decision on the two shipped trials (ticket-triage's three roads, the PubMedQA retrieval
modes), its rendering, and the policy's `requirements:` block (carried, or refused by path)."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest
import yaml

from tests.support.trial_fixtures import POLICY, classification_trial, retrieval_trial
from trivium.common.contracts.decision import Decision
from trivium.gateway.decision import TrialNotDecidableError, build_decision
from trivium.gateway.policy import InvalidPolicyError, Policy, parse_policy
from trivium.trials.report.decision import render_decision, staged_path, write_decision


def policy(text: str = POLICY) -> Policy:
    return parse_policy(text, "policy.yaml")


def decide(feature: str, record: Any, text: str = POLICY) -> Decision:
    return build_decision(feature, policy(text).features[feature], record, "hash", now=1.0)


def test_ticket_triage_stays_on_its_adapter_the_cheapest_that_meets_every_requirement() -> None:
    record, _ = classification_trial()
    decision = decide("ticket-triage", record)
    verdicts = {(c.arm, c.requirement): c.verdict for c in decision.checks}
    # prompt's accuracy [0.48, 0.72] straddles 0.7; its out-of-label rate [0.07, 0.26] 0.1
    assert verdicts["prompt", "min_quality"] == "undecided"
    assert verdicts["prompt", "max_hallucination_rate"] == "undecided"
    assert all(verdicts["finetune", r] == "meets" for r in ("min_quality", "p95_latency_ms"))
    assert [r.rule for r in decision.rules] == [
        "strict_format_or_labels_at_high_volume_favour_an_adapter"
    ]
    rec = decision.recommendation
    assert (rec.arm, rec.stage, rec.confident) == ("finetune", "finetune", True)
    roi = {r.arm: r for r in decision.roi}
    assert roi["finetune"].monthly_cost_usd == pytest.approx(roi["finetune"].cost_per_1k_usd * 2000)
    [vs_prompt, vs_rag] = decision.break_even
    saving = roi["prompt"].cost_per_1k_usd - roi["finetune"].cost_per_1k_usd
    assert vs_prompt.break_even_requests == pytest.approx(3.42 / (saving / 1000))
    assert vs_rag.versus == "rag"
    assert [v.stage for v in decision.path if v.current] == ["finetune"]


def test_pubmed_qa_needs_a_retrieval_road_and_asks_for_the_review_hold() -> None:
    record, _ = retrieval_trial()
    decision = decide("pubmedqa-rag", record)
    assert decision.roads == {a: "rag" for a in ("dense", "sparse", "hybrid", "hybrid-rerank")}
    fired = {r.rule: r for r in decision.rules}
    assert set(fired) == {
        "knowledge_that_changes_faster_than_a_training_cycle_favours_retrieval",
        "a_need_for_citations_requires_a_retrieval_road",
        "regulated_features_require_a_verifier_and_the_review_hold",
    }
    regulated = fired["regulated_features_require_a_verifier_and_the_review_hold"]
    assert regulated.excludes == []  # every arm retrieves
    assert regulated.actions == [
        "set retrieval.on_fail: hold: a poorly grounded answer waits for a reviewer"
    ]
    verdicts = {(c.arm, c.requirement): c.verdict for c in decision.checks}
    # re-ranking buys recall ([0.62, 0.88] >= 0.6) but its P95 (222 ms) breaks the 200 ms SLO
    assert verdicts["hybrid-rerank", "min_quality"] == "meets"
    assert verdicts["hybrid-rerank", "p95_latency_ms"] == "misses"
    roi = {r.arm: r for r in decision.roi}
    assert roi["hybrid-rerank"].latency_headroom_ms == pytest.approx(200 - 222.05, abs=0.01)
    # hybrid misses nothing, but its recall interval [0.52, 0.81] straddles 0.6
    assert verdicts["hybrid", "min_quality"] == "undecided"
    rec = decision.recommendation
    assert (rec.arm, rec.road, rec.stage, rec.confident) == ("hybrid", "rag", "rag", False)
    assert rec.reasons[0].startswith("hybrid misses no requirement, but some intervals")
    assert rec.reasons[1] == (
        "dense, sparse qualify as well at the same cost; hybrid scores highest on recall_at_k"
    )
    assert decision.break_even == []  # no adapter arm, no training cost


def test_a_feature_without_requirements_still_gets_its_roads_compared_on_cost() -> None:
    record, _ = classification_trial()
    data = yaml.safe_load(POLICY)
    del data["features"]["ticket-triage"]["requirements"]
    decision = decide("ticket-triage", record, yaml.safe_dump(data))
    assert decision.checks == []
    assert decision.rules == []
    assert decision.recommendation.arm == "finetune"  # the cheapest per 1k
    assert "per 1k" in decision.recommendation.reasons[-1]


def test_a_trial_of_another_feature_or_unfinished_is_not_decidable() -> None:
    record, _ = classification_trial()
    with pytest.raises(TrialNotDecidableError, match="of feature 'ticket-triage'"):
        decide("pubmedqa-rag", record)
    running = msgspec.structs.replace(record, status="running", summary=None)
    with pytest.raises(TrialNotDecidableError, match="no summary") as caught:
        decide("ticket-triage", running)
    assert caught.value.field == "trial"
    assert caught.value.status_code == 409


def test_the_decision_renders_as_markdown_html_and_json(tmp_path: Any) -> None:
    record, _ = classification_trial()
    decision = decide("ticket-triage", record)
    assert staged_path(decision) == (
        "prompt (undecided) -> RAG (meets) -> fine-tune (HERE; RECOMMENDED; meets) "
        "-> hybrid (not measured)"
    )
    md = render_decision(decision, "md")
    assert "## Recommendation: finetune" in md
    assert "### Strict format or labels, at high volume, favour an adapter." in md
    assert "| prompt | min_quality | accuracy >= 0.700 | 0.600 | [0.476, 0.724] | undecided |" in md
    assert "![" in md
    assert "ticket-triage-quality-cost.png" in md
    # finetune's production feedback (the fixture's online rates) stands beside the trial
    assert "## Online: what production reported" in md
    assert "| finetune | completion |" in md
    html = render_decision(decision, "html")
    assert "Online: what production reported" in html
    assert html.count("<svg") >= 2  # quality vs cost and a confusion matrix per arm
    assert 'id="rule-strict_format_or_labels_at_high_volume_favour_an_adapter"' in html
    assert msgspec.json.decode(render_decision(decision, "json"), type=Decision) == decision
    written = write_decision(decision, "md", tmp_path / "triage.md")
    assert [p.name for p in written][:2] == ["triage.md", "triage-quality-cost.png"]
    assert all(p.stat().st_size > 0 for p in written)


def test_requirements_are_carried_to_the_running_policy() -> None:
    needs = policy().features["ticket-triage"].requirements
    assert needs is not None
    assert needs.min_quality is not None
    assert needs.min_quality.metric == "accuracy"
    assert (needs.output_format, needs.monthly_requests) == ("label", 2_000_000)


@pytest.mark.parametrize(
    ("block", "path"),
    [
        ({"p95": 300}, "features.ticket-triage.requirements.p95"),
        ({"min_quality": {"metric": "bleu", "threshold": 0.5}}, "requirements.min_quality.metric"),
        ({"min_quality": {"metric": "mrr", "threshold": 1.5}}, "min_quality.threshold"),
        ({"min_quality": {"metric": "mrr"}}, "min_quality.threshold"),
        ({"knowledge_changes": "hourly"}, "requirements.knowledge_changes"),
        ({"output_format": "json"}, "requirements.output_format"),
        ({"monthly_requests": -5}, "requirements.monthly_requests"),
        ({"max_hallucination_rate": 2}, "requirements.max_hallucination_rate"),
        ({"regulated": "yes"}, "requirements.regulated"),
        ({"p95_latency_ms": 0}, "requirements.p95_latency_ms"),
    ],
)
def test_a_bad_requirements_block_is_refused_with_its_path(
    block: dict[str, Any], path: str
) -> None:
    data = copy.deepcopy(yaml.safe_load(POLICY))
    data["features"]["ticket-triage"]["requirements"] = block
    with pytest.raises(InvalidPolicyError) as caught:
        parse_policy(yaml.safe_dump(data), "policy.yaml")
    paths = [issue.path for issue in caught.value.issues]
    [only] = paths
    assert only.endswith(path), paths
