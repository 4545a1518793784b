"""The optional LLM judge: a feature of the policy that scores each answered case.

`trivium trial run ... --judge FEATURE` sends every answered case to FEATURE through the same
invoke route as the cases themselves, tagged with the trial (`trial: {id, arm}`, the arm being
the judge feature's own road), so the judge's calls are trial traffic: out of the production
stats window, labelled `traffic="trial"` under the judge feature's name, priced from the same
table. The judge feature may take any road on any upstream the policy names; its template (in
the template registry, like every prompt; `trial-judge` ships as a default) declares the
variables `question`, `answer`, `reference` and `evidence` (the passage texts the answer was
given; `passages` is filled by retrieval and may not be sent as input) and must answer exactly

    faithfulness: 0.8
    correctness: 0.6

(two lines, any order, each a number in [0, 1]). Anything else leaves the case unscored by the
judge (`judge_error: unparseable`); a failed call leaves it unscored with the call's error code.
Either way the case counts in the arm's `judge_unscored`, and what the call cost goes to
`judge_cost_usd`, apart from the arm's own cost.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from trivium.common.contracts.datasets import DatasetRow
from trivium.common.contracts.trials import CaseResult
from trivium.common.errors import NotFoundError
from trivium.trials.results import case_result

__all__ = (
    "JUDGE_VARIABLES",
    "Judge",
    "judge_case",
    "judge_input",
    "judge_of",
    "parse_verdict",
)

JUDGE_VARIABLES = ("question", "answer", "reference", "evidence")
"""The input a judge template receives."""
UNPARSEABLE = "unparseable"
_LINE = re.compile(r"(faithfulness|correctness)\s*:\s*([0-9]+(?:\.[0-9]+)?)", re.IGNORECASE)


class Invoker(Protocol):
    """`trivium.trials.client.GatewayClient.invoke`."""

    async def invoke(self, feature: str, body: dict[str, Any]) -> tuple[int, bytes]: ...


@dataclass(frozen=True)
class Judge:
    feature: str
    road: str
    """The judge feature's own road: the arm its calls force."""


def judge_of(policy: Mapping[str, Any], feature: str) -> Judge:
    """The judge `feature` of `policy` (the JSON of `GET /v1/policy`); 404 naming `judge`."""
    entry = (policy.get("features") or {}).get(feature)
    if not isinstance(entry, Mapping) or not isinstance(entry.get("route"), str):
        known = ", ".join(sorted(policy.get("features") or {})) or "none"
        raise NotFoundError(
            f"the gateway's policy has no judge feature {feature!r} (features: {known})",
            field="judge",
        )
    return Judge(feature, entry["route"])


def parse_verdict(text: str) -> tuple[float, float] | None:
    """(faithfulness, correctness) from the strict two-line format; None otherwise."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    found: dict[str, float] = {}
    for line in lines:
        match = _LINE.fullmatch(line)
        if match is None:
            return None
        name, value = match.group(1).lower(), float(match.group(2))
        if name in found or not 0.0 <= value <= 1.0:
            return None
        found[name] = value
    if set(found) != {"faithfulness", "correctness"}:
        return None
    return found["faithfulness"], found["correctness"]


def judge_input(row: DatasetRow, answer: str, evidence: Sequence[str]) -> dict[str, Any]:
    """The judge template's variables for `answer` to `row`."""
    expected = row.expected
    reference = expected.answer if expected.answer is not None else expected.label
    return {
        "question": _question(row),
        "answer": answer,
        "reference": reference or "",
        "evidence": list(evidence),
    }


async def judge_case(
    client: Invoker,
    judge: Judge,
    trial_id: str,
    row: DatasetRow,
    result: CaseResult,
    evidence: Sequence[str],
) -> CaseResult:
    """`result` with the judge's scores and cost (or why it has none); an unanswered case
    (an error, a withheld answer) is not judged."""
    if not result.ok or result.output is None:
        return result
    body = {
        "input": judge_input(row, result.output, evidence),
        "trial": {"id": trial_id, "arm": judge.road},
    }
    status, raw = await client.invoke(judge.feature, body)
    verdict = case_result(result.case_id, judge.road, status, raw)
    if not verdict.ok:
        return msgspec.structs.replace(result, judge_cost_usd=0.0, judge_error=verdict.error)
    scores = parse_verdict(verdict.output or "")
    if scores is None:
        return msgspec.structs.replace(
            result, judge_cost_usd=verdict.cost_usd, judge_error=UNPARSEABLE
        )
    faithfulness, correctness = scores
    return msgspec.structs.replace(
        result,
        judge_cost_usd=verdict.cost_usd,
        scores=msgspec.structs.replace(
            result.scores, judge_faithfulness=faithfulness, judge_correctness=correctness
        ),
    )


def _question(row: DatasetRow) -> str:
    """The last user message; else the `question` or `query` variable; else the text
    variables, one `name: value` line each."""
    if row.messages:
        users = [m.content for m in row.messages if m.role == "user"]
        return users[-1] if users else row.messages[-1].content
    variables = row.input or {}
    for name in ("question", "query"):
        value = variables.get(name)
        if isinstance(value, str) and value.strip():
            return value
    texts = {name: value for name, value in variables.items() if isinstance(value, str)}
    if len(texts) == 1:
        return next(iter(texts.values()))
    return "\n".join(f"{name}: {value}" for name, value in sorted(texts.items()))
