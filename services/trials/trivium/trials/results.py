"""One case on one arm: the invoke request the runner sends, and the gateway's answer (an
`InvokeResponse`, or a problem+json error) as a `CaseResult`.

The response structs mirror the fields of `trivium.gateway.invoke.schemas.InvokeResponse`
that a trial keeps (trials may not import the gateway); unknown fields are ignored, so the
gateway may grow its answer without breaking the runner.
"""

from __future__ import annotations

from typing import Any

import msgspec

from trivium.common.contracts.datasets import DatasetRow
from trivium.common.contracts.trials import CaseResult

__all__ = ("case_result", "invoke_body", "read_answer")

STAGES = ("retrieve", "rerank", "render", "generate", "verify")


class _Citation(msgspec.Struct):
    doc_id: str
    text: str | None = None
    """Sent on trial traffic only: what an LLM judge reads as the answer's evidence."""


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Fallback(msgspec.Struct):
    reason: str


class _Answer(msgspec.Struct):
    id: str
    route: str
    output: str | None = None
    variant: str | None = None
    citations: list[_Citation] = []
    usage: _Usage = msgspec.field(default_factory=_Usage)
    cost_usd: float = 0.0
    timings_ms: dict[str, float] = {}
    fallback: _Fallback | None = None
    groundedness: float | None = None


class _Problem(msgspec.Struct):
    code: str


_answer = msgspec.json.Decoder(_Answer)
_problem = msgspec.json.Decoder(_Problem)


def invoke_body(row: DatasetRow, trial_id: str, arm: str) -> dict[str, Any]:
    """The invoke request for `row` on `arm`: its input or messages, tagged with the trial."""
    body: dict[str, Any] = {"trial": {"id": trial_id, "arm": arm}}
    if row.messages is not None:
        body["messages"] = [msgspec.structs.asdict(message) for message in row.messages]
    else:
        body["input"] = row.input or {}
    return body


def case_result(case_id: str, arm: str, status: int, body: bytes) -> CaseResult:
    """The gateway's answer to one case: a 2xx `InvokeResponse`, else an error whose `error`
    is the problem's `code` (`http_<status>` when the body is not problem+json)."""
    return read_answer(case_id, arm, status, body)[0]


def read_answer(case_id: str, arm: str, status: int, body: bytes) -> tuple[CaseResult, list[str]]:
    """`case_result`, and the texts of the passages the answer was given (each once, in
    citation order; empty off the retrieval roads). The texts are kept for the judge only,
    never stored with the result."""
    if not 200 <= status < 300:
        try:
            code = _problem.decode(body).code
        except msgspec.DecodeError:
            code = f"http_{status}"
        return CaseResult(case_id=case_id, arm=arm, ok=False, status=status, error=code), []
    try:
        answer = _answer.decode(body)
    except msgspec.DecodeError as exc:
        failed = CaseResult(
            case_id=case_id, arm=arm, ok=False, status=status, error=f"bad_response: {exc}"
        )
        return failed, []
    passages = list(dict.fromkeys(c.text for c in answer.citations if c.text))
    return _result(case_id, arm, status, answer), passages


def _result(case_id: str, arm: str, status: int, answer: _Answer) -> CaseResult:
    return CaseResult(
        case_id=case_id,
        arm=arm,
        ok=True,
        status=status,
        output=answer.output,
        route=answer.route,
        variant=answer.variant,
        citations=list(dict.fromkeys(c.doc_id for c in answer.citations)),
        timings_ms={
            stage: ms
            for stage, ms in answer.timings_ms.items()
            if stage == "total" or (stage in STAGES and ms > 0)
        },
        prompt_tokens=answer.usage.prompt_tokens,
        completion_tokens=answer.usage.completion_tokens,
        cost_usd=answer.cost_usd,
        fallback=answer.fallback.reason if answer.fallback is not None else None,
        groundedness=answer.groundedness,
        answer_id=answer.id,
    )
