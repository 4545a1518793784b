"""The trial runner end to end over HTTP: arms from the policy, rows page by page, every case
through invoke with its trial tag, results stored in batches, Ctrl-C, resume, a summary.

The gateway here is `tests/support/trials_gateway.py`, a real aiohttp server speaking the
Step 9 routes with in-memory state: it stands in for the gateway's dataset and trial routes
and the `trial` invoke field, which are built on other branches, and is to be replaced by the
real gateway once they are merged. The scorer and summariser are small stand-ins for
`trivium.trials.scoring.score_case` and `summary.summarise_trial` (also built elsewhere),
with their signatures.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from tests.support.trials_gateway import TrialsGateway
from trivium.common.contracts.datasets import DatasetRow, Expected
from trivium.common.contracts.trials import (
    ArmSummary,
    CaseResult,
    CaseScores,
    Estimate,
    TrialSummary,
)
from trivium.common.errors import InvalidInputError
from trivium.trials.client import GatewayClient, GatewayError
from trivium.trials.runner import (
    TrialAbortedError,
    TrialPlan,
    TrialRunner,
    resume_command,
    run_until_ctrl_c,
)

KEY = "tk_trials"
LABELS = ("billing", "bug", "account")
POLICY: dict[str, Any] = {
    "version": 1,
    "hash": "policyhash123456",
    "loaded_at": 0.0,
    "source": None,
    "upstreams": {},
    "features": {
        "triage": {
            "route": "prompt",
            "upstream": "local",
            "template": "triage@production",
            "adapter": None,
            "retrieval": {"collection": "examples", "k": 3, "min_groundedness": 0.5},
            "variants": {},
        }
    },
}


def _rows(n: int) -> list[DatasetRow]:
    return [
        DatasetRow(
            id=f"c{i:03d}",
            input={"case": f"c{i:03d}", "ticket": f"ticket {i}"},
            expected=Expected(label=LABELS[i % 3]),
        )
        for i in range(n)
    ]


def _answer(feature: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """prompt always says `billing`; rag says the right label, except that case c003 fails."""
    case = body["input"]["case"]
    if body["trial"]["arm"] == "rag" and case == "c003":
        return 503, {
            "type": "urn:trivium:error:upstream_unavailable",
            "title": "Unavailable",
            "status": 503,
            "detail": "down",
            "code": "upstream_unavailable",
        }
    label = "billing" if body["trial"]["arm"] == "prompt" else LABELS[int(case[1:]) % 3]
    return 200, {
        "id": f"ans-{case}",
        "feature": feature,
        "route": body["trial"]["arm"],
        "variant": None,
        "template": "triage@3",
        "adapter": None,
        "output": label,
        "citations": [],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
        "cost_usd": 0.001,
        "timings_ms": {"generate": 4.0, "total": 5.0},
        "lineage": {"policy_hash": "policyhash123456"},
        "groundedness": 0.9 if body["trial"]["arm"] == "rag" else None,
    }


scored: list[tuple[str, str, float | None]] = []


def score_labels(
    expected: Expected,
    result: CaseResult,
    *,
    labels: Sequence[str],
    min_groundedness: float | None,
) -> CaseScores:
    scored.append((result.arm, result.case_id, min_groundedness))
    predicted = result.output if result.output in labels else None
    return CaseScores(
        correct=predicted == expected.label,
        predicted_label=predicted,
        out_of_labels=predicted is None,
    )


def summarise(
    results_by_arm: Mapping[str, Sequence[CaseResult]],
    *,
    labels: Sequence[str],
    expects: Sequence[str],
    training_costs: Mapping[str, float] | None = None,
) -> TrialSummary:
    assert list(labels) == sorted(LABELS)
    assert list(expects) == ["label"]

    def rate(values: list[bool]) -> Estimate:
        value = sum(values) / len(values) if values else 0.0
        return Estimate(value, value, value, len(values))

    return TrialSummary(
        arms=[
            ArmSummary(
                arm=arm,
                cases=len(results),
                errors=rate([not r.ok for r in results]),
                fallbacks=rate([r.fallback is not None for r in results]),
                latency_ms={},
                prompt_tokens_mean=0.0,
                completion_tokens_mean=0.0,
                cost_per_1k_requests_usd=rate([]),
                accuracy=rate([bool(r.scores.correct) for r in results if r.ok]),
            )
            for arm, results in results_by_arm.items()
        ],
        comparisons=[],
        computed_at=time.time(),
    )


@pytest.fixture
def gateway() -> Iterator[TrialsGateway]:
    scored.clear()
    with TrialsGateway(
        policy=POLICY, answer=_answer, keys={KEY: ("read", "invoke", "trials")}
    ) as gw:
        gw.page_cap = 7  # rows and cases come in several pages
        yield gw


def _runner(client: GatewayClient, batch_size: int = 5) -> TrialRunner:
    return TrialRunner(client, scorer=score_labels, summariser=summarise, batch_size=batch_size)


async def test_a_trial_runs_every_case_on_every_arm_and_finishes_with_a_summary(
    gateway: TrialsGateway,
) -> None:
    gateway.publish("triage-eval", _rows(4))
    gateway.publish("triage-eval", _rows(20), label="production")  # version 2
    gateway.publish("triage-eval", _rows(3))  # version 3, the latest
    async with GatewayClient(gateway.url, KEY) as client:
        plan = TrialPlan("triage", "triage-eval@production", arms=["rag", "prompt"], concurrency=4)
        outcome = await _runner(client).run(plan)

    record = outcome.record
    assert not outcome.interrupted
    assert outcome.sent == 40
    assert record.status == "finished"
    assert record.dataset == "triage-eval@2"
    assert record.arms == ["rag", "prompt"]
    assert record.policy_hash == "policyhash123456"
    assert record.done == {"rag": 20, "prompt": 20}
    assert set(gateway.invokes.values()) == {1}
    assert len(gateway.invokes) == 40
    assert all(size <= 5 for size in gateway.case_puts)
    assert sum(gateway.case_puts) == 40

    stored = gateway.cases[record.id]
    assert stored["rag"]["c003"] == CaseResult(
        case_id="c003", arm="rag", ok=False, status=503, error="upstream_unavailable"
    )
    assert stored["rag"]["c004"].scores == CaseScores(
        correct=True, predicted_label="bug", out_of_labels=False
    )
    assert stored["prompt"]["c004"].scores.correct is False
    assert stored["rag"]["c004"].timings_ms == {"generate": 4.0, "total": 5.0}
    # errors are not scored; rag is held to the feature's threshold, prompt to none
    assert ("rag", "c003", 0.5) not in scored
    assert ("rag", "c004", 0.5) in scored
    assert ("prompt", "c004", None) in scored

    assert record.summary is not None
    accuracy = {arm.arm: arm.accuracy.value for arm in record.summary.arms if arm.accuracy}
    assert accuracy == {"rag": 1.0, "prompt": pytest.approx(7 / 20)}


async def test_an_interrupted_trial_resumes_without_rerunning_finished_cases(
    gateway: TrialsGateway,
) -> None:
    gateway.publish("triage-eval", _rows(30))
    gateway.delay_s = 0.01
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    gateway.on_invoke = lambda n: loop.call_soon_threadsafe(stop.set) if n == 20 else None
    async with GatewayClient(gateway.url, KEY) as client:
        plan = TrialPlan("triage", "triage-eval", arms=["prompt", "rag"], concurrency=3)
        first = await _runner(client).run(plan, stop)
        trial_id = first.record.id
        assert first.interrupted
        assert first.record.status == "interrupted"
        stored_first = {
            (arm, case) for arm, cases in gateway.cases[trial_id].items() for case in cases
        }
        assert 15 <= len(stored_first) < 60
        assert sum(first.record.done.values()) == len(stored_first)
        assert resume_command(first.record) == (
            f"trivium trial run triage --dataset triage-eval@1 --resume {trial_id}"
        )

        gateway.on_invoke = None
        resumed = await _runner(client).run(TrialPlan("triage", None, resume=trial_id))

    assert not resumed.interrupted
    assert resumed.record.status == "finished"
    assert resumed.record.done == {"prompt": 30, "rag": 30}
    assert resumed.sent == 60 - len(stored_first)
    counts = {(arm, case): n for (_, arm, case), n in gateway.invokes.items()}
    assert len(counts) == 60
    assert all(counts[key] == 1 for key in stored_first)  # finished cases never ran again
    assert all(n <= 2 for n in counts.values())  # only cases cut off in flight ran twice


async def test_ctrl_c_stops_the_run_and_marks_the_trial_interrupted(
    gateway: TrialsGateway,
) -> None:
    gateway.publish("triage-eval", _rows(30))
    gateway.delay_s = 0.01
    gateway.on_invoke = lambda n: os.kill(os.getpid(), signal.SIGINT) if n == 6 else None
    async with GatewayClient(gateway.url, KEY) as client:
        outcome = await run_until_ctrl_c(
            _runner(client), TrialPlan("triage", "triage-eval", arms=["prompt"], concurrency=2)
        )
    assert outcome.interrupted
    assert outcome.record.status == "interrupted"
    assert outcome.record.done["prompt"] < 30
    assert gateway.trials[outcome.record.id].status == "interrupted"


async def test_a_gateway_that_cannot_store_aborts_the_run_marked_interrupted(
    gateway: TrialsGateway,
) -> None:
    gateway.publish("triage-eval", _rows(12))
    gateway.refuse_case_puts = True
    async with GatewayClient(gateway.url, KEY) as client:
        with pytest.raises(TrialAbortedError, match="503 the store is down") as caught:
            await _runner(client).run(TrialPlan("triage", "triage-eval", arms=["prompt"]))
    assert caught.value.record.status == "interrupted"
    assert gateway.cases[caught.value.record.id]["prompt"] == {}


async def test_resuming_another_features_trial_is_refused(gateway: TrialsGateway) -> None:
    gateway.publish("triage-eval", _rows(3))
    async with GatewayClient(gateway.url, KEY) as client:
        done = await _runner(client).run(TrialPlan("triage", "triage-eval", arms=["prompt"]))
        gateway.policy = POLICY | {
            "features": POLICY["features"] | {"faq": POLICY["features"]["triage"]}
        }
        with pytest.raises(InvalidInputError, match="of feature triage") as caught:
            await _runner(client).run(TrialPlan("faq", None, resume=done.record.id))
    assert caught.value.field == "resume"


async def test_a_refused_request_names_the_gateways_problem(gateway: TrialsGateway) -> None:
    async with GatewayClient(gateway.url, KEY) as client:
        with pytest.raises(GatewayError) as caught:
            await _runner(client).run(TrialPlan("triage", "missing", arms=["prompt"]))
    assert caught.value.status == 404
    assert caught.value.field == "name"
