"""Answer, cost and latency drift in the gateway (`AnswerDriftMonitor`) and the shared
statistics (`trivium.common.drift`), on synthetic answers with a fixed seed."""

from __future__ import annotations

import random

import pytest

from trivium.common.contracts.drift import ANSWER_SIGNALS
from trivium.common.drift import chi_square_p, freeze_bins, psi
from trivium.gateway.config import DriftSection
from trivium.gateway.drift.monitor import AnswerDriftMonitor
from trivium.gateway.invoke.schemas import InvokeResponse, Lineage, Timings, Usage

SETTINGS = DriftSection(baseline_size=200, window_size=100, min_window=100)
LABELS = ("billing", "account", "bug", "feature", "other")


def answer(
    rng: random.Random,
    *,
    grounded: float = 0.8,
    length: int = 300,
    withheld: float = 0.02,
    label_weights: tuple[float, ...] = (5, 3, 2, 1, 1),
    tokens: int = 400,
    latency: float = 900.0,
) -> InvokeResponse:
    held = rng.random() < withheld
    label = rng.choices(LABELS, label_weights)[0]
    size = max(1, int(rng.gauss(length, length / 5)))
    output = None if held else (label + " " + "x" * size)[:size]
    total_tokens = max(1, int(rng.gauss(tokens, tokens / 8)))
    generate = max(1.0, rng.gauss(latency, latency / 6))
    return InvokeResponse(
        id="ans_x",
        feature="f",
        route="rag",
        variant=None,
        template=None,
        adapter=None,
        output=label if output is not None and length == 0 else output,
        citations=[],
        usage=Usage(total_tokens // 2, total_tokens - total_tokens // 2, total_tokens),
        cost_usd=0.0,
        timings_ms=Timings(retrieve=20 + rng.random(), generate=generate, total=generate + 25),
        lineage=Lineage(policy_hash="h"),
        groundedness=min(1.0, max(0.0, rng.gauss(grounded, 0.08))),
        verdict="withheld" if held else "passed",
    )


def drifting(monitor: AnswerDriftMonitor) -> set[str]:
    signals = monitor.signals(monitor.snapshot("f"))
    return {s.name for s in signals if s.drifting}


def test_a_stable_stream_never_alarms_and_each_shift_moves_its_own_signal() -> None:
    rng = random.Random(16)
    monitor = AnswerDriftMonitor(SETTINGS)
    for _ in range(200):
        monitor.observe("f", answer(rng), labelled=False)
    assert monitor.snapshot("f").baseline is not None
    checks = alarms = 0
    for _ in range(1000):  # 10 x the window
        monitor.observe("f", answer(rng), labelled=False)
        if len(monitor.snapshot("f").window) >= 100:
            checks += 1
            alarms += bool(drifting(monitor))
    assert (checks, alarms) == (901, 0)

    shifts = {
        "answer_groundedness_psi": {"grounded": 0.5},
        "answer_length_psi": {"length": 120},
        "answer_withheld_rate_increase": {"withheld": 0.3},
        "cost_tokens_psi": {"tokens": 800},
        "latency_generate_psi": {"latency": 2500.0},
    }
    for signal, shift in shifts.items():
        shifted = AnswerDriftMonitor(SETTINGS)
        for _ in range(200):
            shifted.observe("f", answer(rng), labelled=False)
        for _ in range(100):
            shifted.observe("f", answer(rng, **shift), labelled=False)  # type: ignore[arg-type]
        assert signal in drifting(shifted), signal


def test_label_distribution_is_compared_by_chi_square() -> None:
    rng = random.Random(7)
    monitor = AnswerDriftMonitor(SETTINGS)
    for _ in range(200):
        monitor.observe("f", answer(rng, length=0), labelled=True)
    for _ in range(100):
        monitor.observe("f", answer(rng, length=0), labelled=True)
    assert "answer_label_chi2" not in drifting(monitor)
    for _ in range(100):
        monitor.observe("f", answer(rng, length=0, label_weights=(1, 1, 1, 1, 8)), labelled=True)
    assert "answer_label_chi2" in drifting(monitor)


def test_signals_wait_for_a_full_window_and_reset_starts_over() -> None:
    rng = random.Random(1)
    monitor = AnswerDriftMonitor(SETTINGS)
    for _ in range(299):
        monitor.observe("f", answer(rng), labelled=False)
    signals = monitor.signals(monitor.snapshot("f"))
    assert [s.name for s in signals] == list(ANSWER_SIGNALS)
    assert all(s.value is None and not s.drifting for s in signals)
    monitor.reset("f")
    snapshot = monitor.snapshot("f")
    assert (snapshot.baseline, snapshot.collecting, snapshot.window) == (None, 0, [])
    monitor.retain([])
    assert monitor.snapshot("f").collecting == 0


def test_psi_of_equal_and_shifted_samples() -> None:
    rng = random.Random(3)
    base = freeze_bins([rng.gauss(0, 1) for _ in range(2000)])
    assert psi(base, [rng.gauss(0, 1) for _ in range(2000)]) < 0.01
    assert psi(base, [rng.gauss(1, 1) for _ in range(2000)]) > 0.5
    spiked = freeze_bins([1.0] * 90 + [0.5] * 10)  # tied cut points merge into one bin
    assert spiked.edges == (1.0,)
    assert psi(spiked, [1.0] * 9 + [0.5]) == pytest.approx(0.0, abs=0.02)


def test_chi_square_p_value() -> None:
    expected = {"a": 0.5, "b": 0.5}
    assert chi_square_p(expected, {"a": 50, "b": 50}) > 0.9
    # statistic 4.0 with 1 degree of freedom: p = 0.0455 (the approximation is within 0.01)
    assert chi_square_p(expected, {"a": 60, "b": 40}) == pytest.approx(0.0455, abs=0.01)
    assert chi_square_p(expected, {"a": 90, "b": 10}) < 1e-10
