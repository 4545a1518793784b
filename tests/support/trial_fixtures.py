"""Realistic finished trials built straight from the wire contracts, for the report's tests.

- `classification_trial()`: `ticket-triage`, three arms (prompt, rag, finetune) over 60
  labelled tickets: accuracy, macro-F1, confusion matrices, out-of-label answers, a fallback, an
  error, per-stage latency, cost, the adapter's training cost, online feedback on one arm;
- `retrieval_trial()`: a PubMedQA-like RAG feature, four retrieval modes as arms, scored on
  `doc_ids` only (recall@k, MRR; no label set, so no confusion matrix);
- `POLICY`: a policy for both features with their declared requirements (the decision's
  yardstick), and `store_trial`, which writes a trial into Redis as the gateway keeps it.

The cases are drawn from a seeded generator; the summaries are computed here from those cases
with a plain normal-approximation interval (the scoring library's bootstrap is not what these
tests are about), so every number the report shows can be traced to the cases.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from trivium.common.contracts.trials import (
    ArmSummary,
    CaseResult,
    CaseScores,
    Comparison,
    Estimate,
    LatencySummary,
    TrialRecord,
    TrialSummary,
)

LABELS = ("billing", "bug", "feature-request", "account")
OTHER = "(other)"
CREATED_AT = 1_760_000_000.0

Cases = dict[str, list[CaseResult]]


def estimate(values: Sequence[float]) -> Estimate:
    n = len(values)
    if n == 0:
        return Estimate(0.0, 0.0, 0.0, 0)
    mean = sum(values) / n
    spread = 1.96 * math.sqrt(max(mean * (1 - mean), 0.0) / n) if n > 1 else 0.0
    return Estimate(mean, max(0.0, mean - spread), min(1.0, mean + spread), n)


def money(values: Sequence[float]) -> Estimate:
    mean = sum(values) / len(values)
    return Estimate(mean * 1000, mean * 900, mean * 1100, len(values))


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def latency(results: Sequence[CaseResult]) -> dict[str, LatencySummary]:
    stages = sorted({stage for r in results if r.ok for stage in r.timings_ms})
    out = {}
    for stage in stages:
        values = [r.timings_ms[stage] for r in results if r.ok and stage in r.timings_ms]
        out[stage] = LatencySummary(
            percentile(values, 50),
            percentile(values, 95),
            percentile(values, 99),
            sum(values) / len(values),
        )
    return out


def scored(results: Sequence[CaseResult], pick: Callable[[CaseScores], object]) -> list[float]:
    return [float(v) for r in results if r.ok if (v := pick(r.scores)) is not None]  # type: ignore[arg-type]


def base_summary(arm: str, results: Sequence[CaseResult]) -> ArmSummary:
    return ArmSummary(
        arm=arm,
        cases=len(results),
        errors=estimate([0.0 if r.ok else 1.0 for r in results]),
        fallbacks=estimate([1.0 if r.fallback else 0.0 for r in results]),
        latency_ms=latency(results),
        prompt_tokens_mean=sum(r.prompt_tokens for r in results) / len(results),
        completion_tokens_mean=sum(r.completion_tokens for r in results) / len(results),
        cost_per_1k_requests_usd=money([r.cost_usd for r in results]),
    )


def record(
    feature: str, dataset: str, arms: Sequence[ArmSummary], comparisons: list[Comparison]
) -> TrialRecord:
    names = [arm.arm for arm in arms]
    return TrialRecord(
        id="trl_report0test1",
        feature=feature,
        dataset=dataset,
        arms=names,
        cases=arms[0].cases,
        status="finished",
        created_at=CREATED_AT,
        created_by="pm-alice",
        done={name: arms[0].cases for name in names},
        updated_at=CREATED_AT + 600,
        policy_hash="sha256:5f1c0ffee",
        note="held-out split | never trained on <b>",
        summary=TrialSummary(
            arms=list(arms), comparisons=comparisons, computed_at=CREATED_AT + 601
        ),
    )


# ---------------------------------------------------------------- classification (3 arms)
ACCURACY = {"prompt": 0.55, "rag": 0.72, "finetune": 0.88}
GENERATE_MS = {"prompt": 180.0, "rag": 210.0, "finetune": 120.0}
PROMPT_TOKENS = {"prompt": 140, "rag": 420, "finetune": 60}


def _triage_case(rng: random.Random, arm: str, index: int) -> CaseResult:
    case_id = f"t{index:03d}"
    expected = LABELS[index % len(LABELS)]
    if arm == "rag" and index == 7:
        return CaseResult(case_id=case_id, arm=arm, ok=False, status=503, error="unavailable")
    if rng.random() < ACCURACY[arm]:
        predicted: str | None = expected
    elif arm == "prompt" and rng.random() < 0.3:
        predicted = None  # a label outside the set
    else:
        predicted = rng.choice([label for label in LABELS if label != expected])
    stages = {"generate": GENERATE_MS[arm] * rng.lognormvariate(0, 0.35), "render": 0.4}
    if arm == "rag":
        stages["retrieve"] = 25 * rng.lognormvariate(0, 0.3)
    stages["total"] = sum(stages.values()) + 2.0
    prompt_tokens = PROMPT_TOKENS[arm] + rng.randint(0, 40)
    return CaseResult(
        case_id=case_id,
        arm=arm,
        ok=True,
        status=200,
        output=predicted or "probably a refund thing?",
        route="prompt" if arm == "rag" and index == 11 else arm,
        fallback="retriever_unavailable" if arm == "rag" and index == 11 else None,
        citations=["ticket-12", "ticket-40"] if arm == "rag" else [],
        timings_ms=stages,
        prompt_tokens=prompt_tokens,
        completion_tokens=3,
        cost_usd=(prompt_tokens * 0.15 + 3 * 0.6) / 1_000_000,
        groundedness=0.8 if arm == "rag" else None,
        scores=CaseScores(
            correct=predicted == expected,
            predicted_label=predicted,
            out_of_labels=predicted is None,
        ),
    )


def _confusion(results: Sequence[CaseResult]) -> dict[str, dict[str, int]]:
    matrix: dict[str, dict[str, int]] = {label: {} for label in LABELS}
    for index, r in enumerate(results):
        if not r.ok:
            continue
        expected = LABELS[index % len(LABELS)]
        predicted = r.scores.predicted_label or OTHER
        matrix[expected][predicted] = matrix[expected].get(predicted, 0) + 1
    return matrix


def _macro_f1(matrix: dict[str, dict[str, int]]) -> float:
    f1s = []
    for label in LABELS:
        tp = matrix[label].get(label, 0)
        fp = sum(row.get(label, 0) for other, row in matrix.items() if other != label)
        fn = sum(count for predicted, count in matrix[label].items() if predicted != label)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(f1s) / len(f1s)


def classification_trial(cases_per_arm: int = 60) -> tuple[TrialRecord, Cases]:
    rng = random.Random(14)
    cases: Cases = {
        arm: [_triage_case(rng, arm, i) for i in range(cases_per_arm)] for arm in ACCURACY
    }
    arms = []
    for arm, results in cases.items():
        matrix = _confusion(results)
        summary = msgspec.structs.replace(
            base_summary(arm, results),
            accuracy=estimate(scored(results, lambda s: s.correct)),
            macro_f1=_macro_f1(matrix),
            confusion=matrix,
            out_of_labels=estimate(scored(results, lambda s: s.out_of_labels)),
            ungrounded=estimate([0.0] * (cases_per_arm - 1)) if arm == "rag" else None,
            training_cost_usd=3.42 if arm == "finetune" else None,
            online=(
                {
                    "completion": Estimate(0.81, 0.76, 0.86, 240),
                    "satisfaction": Estimate(0.64, 0.58, 0.7, 240),
                }
                if arm == "finetune"
                else None
            ),
        )
        arms.append(summary)
    comparisons = [
        Comparison(
            "accuracy",
            "prompt",
            "finetune",
            cases_per_arm,
            0.31,
            0.17,
            0.45,
            0.0004,
            "mcnemar-exact",
            True,
            "finetune beats prompt on accuracy (+0.31, p=0.0004)",
        ),
        Comparison(
            "accuracy",
            "prompt",
            "rag",
            cases_per_arm - 1,
            0.15,
            -0.01,
            0.31,
            0.09,
            "mcnemar-exact",
            False,
            "no significant difference between rag and prompt on accuracy (p=0.09)",
        ),
        Comparison(
            "accuracy",
            "rag",
            "finetune",
            cases_per_arm - 1,
            0.16,
            0.02,
            0.3,
            0.03,
            "mcnemar-exact",
            True,
            "finetune beats rag on accuracy (+0.16, p=0.03)",
        ),
    ]
    return record("ticket-triage", "triage-eval@1", arms, comparisons), cases


# ---------------------------------------------------------------- retrieval (4 modes, no labels)
RECALL = {"dense": 0.62, "sparse": 0.55, "hybrid": 0.71, "hybrid-rerank": 0.8}


def _retrieval_case(rng: random.Random, arm: str, index: int) -> CaseResult:
    expected = [f"pmid-{index}-a", f"pmid-{index}-b"]
    found = [doc for doc in expected if rng.random() < RECALL[arm]]
    citations = [*found, f"pmid-{index + 1}-a"]
    rng.shuffle(citations)
    rank = next((i + 1 for i, doc in enumerate(citations) if doc in expected), None)
    stages = {
        "retrieve": 30 * rng.lognormvariate(0, 0.3),
        "generate": 90 * rng.lognormvariate(0, 0.2),
    }
    if arm == "hybrid-rerank":
        stages["rerank"] = 45 * rng.lognormvariate(0, 0.25)
    stages["total"] = sum(stages.values()) + 1.5
    return CaseResult(
        case_id=f"q{index:03d}",
        arm=arm,
        ok=True,
        status=200,
        output="yes",
        route="rag",
        citations=citations,
        timings_ms=stages,
        prompt_tokens=380,
        completion_tokens=12,
        cost_usd=0.0,
        groundedness=rng.uniform(0.3, 0.95),
        scores=CaseScores(recall_at_k=len(found) / 2, reciprocal_rank=1 / rank if rank else 0.0),
    )


def retrieval_trial(cases_per_arm: int = 40) -> tuple[TrialRecord, Cases]:
    rng = random.Random(9)
    cases: Cases = {
        arm: [_retrieval_case(rng, arm, i) for i in range(cases_per_arm)] for arm in RECALL
    }
    arms = [
        msgspec.structs.replace(
            base_summary(arm, results),
            recall_at_k=estimate(scored(results, lambda s: s.recall_at_k)),
            mrr=estimate(scored(results, lambda s: s.reciprocal_rank)),
            ungrounded=estimate([1.0 if (r.groundedness or 0) < 0.5 else 0.0 for r in results]),
        )
        for arm, results in cases.items()
    ]
    comparisons = [
        Comparison(
            "recall_at_k",
            "dense",
            "hybrid-rerank",
            cases_per_arm,
            0.18,
            0.06,
            0.3,
            0.004,
            "paired-bootstrap",
            True,
            "hybrid-rerank beats dense on recall_at_k (+0.18, p=0.004)",
        ),
        Comparison(
            "mrr",
            "dense",
            "sparse",
            cases_per_arm,
            -0.04,
            -0.15,
            0.07,
            0.48,
            "paired-bootstrap",
            False,
            "no significant difference between sparse and dense on mrr (p=0.48)",
        ),
    ]
    return record("pubmedqa-rag", "pubmedqa-eval@2", arms, comparisons), cases


# ---------------------------------------------------------------- the policies they ran under
POLICY = """
upstreams:
  local: {url: "http://127.0.0.1:9/v1", model: base}
features:
  ticket-triage:
    route: finetune
    adapter: triage-lora@production
    template: triage@production
    retrieval: {collection: triage-examples, k: 3}
    upstream: local
    requirements:
      p95_latency_ms: 400
      max_cost_per_1k_usd: 0.08
      min_quality: {metric: accuracy, threshold: 0.7}
      max_hallucination_rate: 0.1
      knowledge_changes: monthly
      output_format: label
      monthly_requests: 2000000
  pubmedqa-rag:
    route: rag
    template: pubmed-answer@production
    upstream: local
    retrieval: {collection: pubmedqa, k: 3, min_groundedness: 0.5}
    variants:
      hybrid: {weight: 8}
      dense: {weight: 1, retrieval: {collection: pubmedqa, mode: dense}}
      sparse: {weight: 1, retrieval: {collection: pubmedqa, mode: sparse}}
      hybrid-rerank: {weight: 0, retrieval: {collection: pubmedqa, rerank: true}}
    requirements:
      p95_latency_ms: 200
      min_quality: {metric: recall_at_k, threshold: 0.6}
      max_hallucination_rate: 0.5
      needs_citations: true
      knowledge_changes: weekly
      regulated: true
      monthly_requests: 50000
"""
"""A policy for both fixture trials' features, with the requirements a PM would declare."""


def store_trial(client: Any, prefix: str, trial: TrialRecord) -> None:
    """Writes `trial` into Redis (a sync client) the way the gateway's trials store keeps it:
    `<prefix>:trial:<id>` hash (record, status, updated_at, summary) and per-arm id sets."""
    key = f"{prefix}:trial:{trial.id}"
    stored = {
        "id": trial.id,
        "feature": trial.feature,
        "dataset": trial.dataset,
        "arms": trial.arms,
        "cases": trial.cases,
        "created_at": trial.created_at,
        "created_by": trial.created_by,
        "policy_hash": trial.policy_hash,
        "note": trial.note,
    }
    fields: dict[str, bytes | str] = {
        "record": msgspec.json.encode(stored),
        "status": trial.status,
        "updated_at": repr(trial.updated_at),
    }
    if trial.summary is not None:
        fields["summary"] = msgspec.json.encode(trial.summary)
    client.hset(key, mapping=fields)
    for arm, done in trial.done.items():
        if done:
            client.zadd(f"{key}:arm:{arm}:ids", {f"c{i:04d}": 0 for i in range(done)})
