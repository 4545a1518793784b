"""`trivium trial run`: every case of a dataset through a gateway's real invoke path, per arm.

The runner reads the feature's arms from `GET /v1/policy`, the dataset's rows page by page,
creates the trial (`POST /v1/trials`, the dataset resolved to `name@version` so a resumed trial
reads the same rows), then sends each pending case to each arm (`trial: {id, arm}` forces the
arm) from `concurrency` workers, scores each answer (`Scorer`), and stores results in batches
(`PUT /v1/trials/{id}/cases`). When every case is stored it reads them back, summarises them
(`Summariser`) with each fine-tune arm's one-off training cost where the adapter's metadata
and the policy's GPU-hour price give one (`trivium.trials.training`), adds production's
feedback rates per arm where the stats window has any (`trivium.trials.online`), and stores
the summary, which finishes the trial. With a judge (`TrialPlan.judge`, a feature of the
policy), each answered case is also scored by it through invoke (`trivium.trials.judge`).

Setting `stop` (the CLI sets it on Ctrl-C) cancels the cases in flight, stores what is done,
marks the trial `interrupted` and returns; a resumed run (`TrialPlan.resume`) reads the stored
case ids per arm and runs only the rest. A gateway that stops answering, or refuses to store,
ends the run the same way, raising `TrialAbortedError`.

Scoring and summarising come in as functions (`trivium.trials.scoring.score_case` and
`trivium.trials.summary.summarise_trial`, wired by the CLI), so the runner depends on their
signatures only.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from trivium.common.aio import cancel_and_wait
from trivium.common.contracts.datasets import DatasetRow, Expected
from trivium.common.contracts.trials import (
    CaseResult,
    CaseScores,
    TrialCreate,
    TrialRecord,
    TrialSummary,
)
from trivium.common.errors import InvalidInputError, TriviumError
from trivium.trials.arms import ArmSpec, choose_arms, feature_arms
from trivium.trials.client import GatewayClient
from trivium.trials.judge import Judge, judge_case, judge_of
from trivium.trials.online import with_online_rates
from trivium.trials.progress import RunObserver
from trivium.trials.results import invoke_body, read_answer
from trivium.trials.training import training_costs
from trivium.trials.work import ResultBuffer, WorkQueue

__all__ = (
    "BATCH_SIZE",
    "LoadedDataset",
    "RunOutcome",
    "Scorer",
    "Summariser",
    "TrialAbortedError",
    "TrialPlan",
    "TrialRunner",
    "load_dataset",
    "resume_command",
    "run_until_ctrl_c",
)

log = logging.getLogger(__name__)

BATCH_SIZE = 200
"""Results per `PUT /v1/trials/{id}/cases` (the route takes up to 500)."""
EXPECTS = ("label", "answer", "doc_ids")


class Scorer(Protocol):
    """`trivium.trials.scoring.score_case`."""

    def __call__(
        self,
        expected: Expected,
        result: CaseResult,
        *,
        labels: Sequence[str],
        min_groundedness: float | None,
    ) -> CaseScores: ...


class Summariser(Protocol):
    """`trivium.trials.summary.summarise_trial`."""

    def __call__(
        self,
        results_by_arm: Mapping[str, Sequence[CaseResult]],
        *,
        labels: Sequence[str],
        expects: Sequence[str],
        training_costs: Mapping[str, float] | None = None,
    ) -> TrialSummary: ...


class TrialAbortedError(TriviumError):
    """The run ended early because the gateway failed it; what was done is stored and the
    trial is marked interrupted (when the gateway still answered)."""

    status_code = 503
    code = "trial_aborted"
    title = "Trial aborted"

    def __init__(self, record: TrialRecord, cause: BaseException) -> None:
        reason = cause.message if isinstance(cause, TriviumError) else repr(cause)
        super().__init__(f"trial {record.id} stopped: {reason}")
        self.record = record


@dataclass(frozen=True)
class TrialPlan:
    feature: str
    dataset: str | None
    """`NAME`, `NAME@label` or `NAME@version`; None when resuming (the trial's own)."""
    arms: Sequence[str] | None = None
    """None: every arm the feature can take."""
    concurrency: int = 8
    resume: str | None = None
    """A trial id: run only the cases it has no stored result for."""
    note: str | None = None
    judge: str | None = None
    """A feature of the policy that scores each answered case (faithfulness, correctness)."""


@dataclass(frozen=True)
class RunOutcome:
    record: TrialRecord
    interrupted: bool
    """Stopped before every case was stored: resume with `resume_command(record)`."""
    sent: int
    """Cases sent through invoke by this run."""


@dataclass(frozen=True)
class LoadedDataset:
    name: str
    version: int
    rows: list[DatasetRow]
    labels: list[str]
    """Every `expected.label` of the rows, sorted (the manifest's label set)."""
    expects: list[str]
    """Which `expected` members the rows carry."""

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


async def load_dataset(client: GatewayClient, ref: str) -> LoadedDataset:
    """Every row of dataset `ref`, page by page; after the first page the resolved version is
    asked for, so a label moved meanwhile cannot mix two versions."""
    name, _, selector = ref.partition("@")
    rows: list[DatasetRow] = []
    page = await client.dataset_rows(name, selector or None, 0)
    version = page.version
    rows.extend(page.rows)
    while page.next_offset is not None:
        page = await client.dataset_rows(name, str(version), page.next_offset)
        rows.extend(page.rows)
    labels = sorted({row.expected.label for row in rows if row.expected.label is not None})
    expects = [
        member for member in EXPECTS if any(getattr(r.expected, member) is not None for r in rows)
    ]
    return LoadedDataset(name, version, rows, labels, expects)


def resume_command(
    record: TrialRecord, gateway: str | None = None, judge: str | None = None
) -> str:
    """The command that resumes `record` (with the same judge, when it had one)."""
    where = f" --gateway {gateway}" if gateway else ""
    judged = f" --judge {judge}" if judge else ""
    return (
        f"trivium trial run {record.feature} --dataset {record.dataset}{where}{judged} "
        f"--resume {record.id}"
    )


async def run_until_ctrl_c(runner: TrialRunner, plan: TrialPlan) -> RunOutcome:
    """`runner.run(plan)`, stopped cleanly by the first SIGINT (Ctrl-C); a second one, once
    the handler is gone, interrupts as Python does."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, _stop_once, loop, stop)
    try:
        return await runner.run(plan, stop)
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def _stop_once(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    stop.set()
    loop.remove_signal_handler(signal.SIGINT)


class _NullObserver:
    def start(self, arms: Mapping[str, tuple[int, int]]) -> None:
        pass

    def advance(self, result: CaseResult) -> None:
        pass

    def stop(self) -> None:
        pass


class TrialRunner:
    def __init__(
        self,
        client: GatewayClient,
        *,
        scorer: Scorer,
        summariser: Summariser,
        observer: RunObserver | None = None,
        batch_size: int = BATCH_SIZE,
        flush_interval_s: float = 5.0,
    ) -> None:
        self.client = client
        self.scorer = scorer
        self.summariser = summariser
        self.observer: RunObserver = observer or _NullObserver()
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s

    async def run(self, plan: TrialPlan, stop: asyncio.Event | None = None) -> RunOutcome:
        """Run (or resume) `plan` until every case is stored or `stop` is set."""
        if plan.concurrency < 1:
            raise InvalidInputError("concurrency must be at least 1", field="concurrency")
        policy = await self.client.policy()
        available = feature_arms(policy, plan.feature)
        judge = judge_of(policy, plan.judge) if plan.judge is not None else None
        policy_hash = policy.get("hash")
        record, arms, dataset = await self._open(
            plan, available, policy_hash if isinstance(policy_hash, str) else None
        )
        done = await self._stored_ids(record, arms)
        pending = {
            arm.name: [r for r in dataset.rows if r.id not in done[arm.name]] for arm in arms
        }
        log.info(
            "trial run",
            extra={
                "trial": record.id,
                "feature": record.feature,
                "dataset": record.dataset,
                "arms": [arm.name for arm in arms],
                "pending": {arm: len(rows) for arm, rows in pending.items()},
                "resumed": plan.resume is not None,
                "judge": plan.judge,
            },
        )
        queue = WorkQueue(pending)
        buffer = ResultBuffer(
            lambda batch: self.client.put_cases(record.id, batch),
            batch_size=self.batch_size,
            interval_s=self.flush_interval_s,
        )
        self.observer.start({a.name: (len(done[a.name]), len(dataset.rows)) for a in arms})
        specs = {arm.name: arm for arm in arms}
        sent = 0

        async def work() -> None:
            nonlocal sent
            while (item := queue.take()) is not None:
                arm, row = item
                sent += 1
                result = await self._case(record, specs[arm], row, dataset.labels, judge)
                self.observer.advance(result)
                await buffer.add(result)

        workers = [asyncio.create_task(work()) for _ in range(min(plan.concurrency, len(queue)))]
        try:
            stopped = await _until_done_or_stopped(workers, stop or asyncio.Event())
            await buffer.flush()
        except BaseException as exc:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self.observer.stop()
            record = await self._interrupt(record, buffer)
            if isinstance(exc, TriviumError | OSError):
                raise TrialAbortedError(record, exc) from exc
            raise
        self.observer.stop()
        if stopped:
            record = await self._interrupt(record, buffer)
            return RunOutcome(record, interrupted=True, sent=sent)
        record = await self._finish(record, arms, dataset, policy)
        return RunOutcome(record, interrupted=False, sent=sent)

    async def _open(
        self, plan: TrialPlan, available: Sequence[ArmSpec], policy_hash: str | None
    ) -> tuple[TrialRecord, list[ArmSpec], LoadedDataset]:
        """The trial to run (created, or the one to resume, marked running), its arms and rows."""
        if plan.resume is None:
            if plan.dataset is None:
                raise InvalidInputError("a new trial needs a dataset", field="dataset")
            arms = choose_arms(available, plan.arms)
            dataset = await load_dataset(self.client, plan.dataset)
            create = TrialCreate(
                feature=plan.feature,
                dataset=dataset.ref,
                arms=[arm.name for arm in arms],
                cases=len(dataset.rows),
                policy_hash=policy_hash,
                note=plan.note,
            )
            return await self.client.create_trial(create), arms, dataset
        record = await self.client.trial(plan.resume)
        if record.feature != plan.feature:
            raise InvalidInputError(
                f"trial {record.id} is of feature {record.feature}, not {plan.feature}",
                field="resume",
            )
        if plan.dataset is not None and plan.dataset.partition("@")[0] != _name(record.dataset):
            raise InvalidInputError(
                f"trial {record.id} runs dataset {record.dataset}, not {plan.dataset}",
                field="dataset",
            )
        if plan.arms and list(dict.fromkeys(plan.arms)) != record.arms:
            raise InvalidInputError(
                f"trial {record.id} runs arms {','.join(record.arms)}; "
                "a resumed trial keeps its arms",
                field="arms",
            )
        arms = choose_arms(available, record.arms)
        dataset = await load_dataset(self.client, record.dataset)
        if record.status != "running":
            record = await self.client.set_status(record.id, "running")
        return record, arms, dataset

    async def _stored_ids(
        self, record: TrialRecord, arms: Sequence[ArmSpec]
    ) -> dict[str, set[str]]:
        if not any(record.done.get(arm.name) for arm in arms):
            return {arm.name: set() for arm in arms}
        return {
            arm.name: {case.case_id for case in await self.client.cases(record.id, arm.name)}
            for arm in arms
        }

    async def _case(
        self,
        record: TrialRecord,
        arm: ArmSpec,
        row: DatasetRow,
        labels: Sequence[str],
        judge: Judge | None,
    ) -> CaseResult:
        status, body = await self.client.invoke(
            record.feature, invoke_body(row, record.id, arm.name)
        )
        result, passages = read_answer(row.id, arm.name, status, body)
        if not result.ok:
            return result
        scores = self.scorer(
            row.expected, result, labels=labels, min_groundedness=arm.min_groundedness
        )
        result = msgspec.structs.replace(result, scores=scores)
        if judge is None:
            return result
        return await judge_case(self.client, judge, record.id, row, result, passages)

    async def _interrupt(self, record: TrialRecord, buffer: ResultBuffer) -> TrialRecord:
        """Store what is done and mark the trial interrupted, as far as the gateway lets us."""
        try:
            await buffer.flush()
        except (TriviumError, OSError) as exc:
            log.warning(
                "trial results not stored; they run again on resume",
                extra={"trial": record.id, "cases": len(buffer), "error": str(exc)},
            )
        try:
            record = await self.client.set_status(record.id, "interrupted")
        except (TriviumError, OSError) as exc:
            log.warning(
                "trial not marked interrupted", extra={"trial": record.id, "error": str(exc)}
            )
        log.info(
            "trial interrupted",
            extra={"trial": record.id, "done": record.done, "resume": resume_command(record)},
        )
        return record

    async def _finish(
        self,
        record: TrialRecord,
        arms: Sequence[ArmSpec],
        dataset: LoadedDataset,
        policy: Mapping[str, Any],
    ) -> TrialRecord:
        results = {arm.name: await self.client.cases(record.id, arm.name) for arm in arms}
        training = await training_costs(self.client, policy, arms)
        summary = self.summariser(
            results, labels=dataset.labels, expects=dataset.expects, training_costs=training
        )
        summary = await self._with_online_rates(record, arms, summary)
        record = await self.client.put_summary(record.id, summary)
        log.info("trial finished", extra={"trial": record.id, "done": record.done})
        return record

    async def _with_online_rates(
        self, record: TrialRecord, arms: Sequence[ArmSpec], summary: TrialSummary
    ) -> TrialSummary:
        """`summary` with production's feedback rates; unchanged when they cannot be read
        (the offline numbers stand on their own)."""
        try:
            stats = await self.client.feature_stats(record.feature)
        except (TriviumError, OSError) as exc:
            log.warning(
                "online feedback rates not read", extra={"trial": record.id, "error": str(exc)}
            )
            return summary
        return with_online_rates(summary, stats, record.feature, arms)


async def _until_done_or_stopped(
    workers: Sequence[asyncio.Task[None]], stop: asyncio.Event
) -> bool:
    """Wait for every worker, or for `stop` (then cancel them): True when stopped. A worker's
    exception is raised (the others keep running; the caller cancels them)."""
    stopper: asyncio.Task[Any] = asyncio.create_task(stop.wait())
    running: set[asyncio.Task[Any]] = set(workers)
    try:
        while running:
            finished, running = await asyncio.wait(
                running | {stopper}, return_when=asyncio.FIRST_COMPLETED
            )
            running.discard(stopper)
            for task in finished - {stopper}:
                task.result()
            if stopper in finished:
                for worker in running:
                    await cancel_and_wait(worker)
                return True
        return False
    finally:
        await cancel_and_wait(stopper)


def _name(dataset_ref: str) -> str:
    return dataset_ref.partition("@")[0]
