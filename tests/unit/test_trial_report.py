"""The trial report's formats, from finished trials built out of the wire contracts."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from tests.support.trial_fixtures import Cases, classification_trial, retrieval_trial
from trivium.common.contracts.trials import TrialRecord
from trivium.common.errors import ConflictError
from trivium.trials.report import render_report, write_report
from trivium.trials.report.figures import confusion_plot, plot_svg

KPI_HEADER = "| KPI | value | 95% interval | n |"


def _arm_sections(markdown: str) -> dict[str, str]:
    parts = re.split(r"^## Arm `([^`]+)`$", markdown, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_markdown_has_a_kpi_table_per_arm_and_every_verdict() -> None:
    record, cases = classification_trial()
    assert record.summary is not None
    markdown = render_report(record, cases, "md")
    sections = _arm_sections(markdown)
    assert list(sections) == ["prompt", "rag", "finetune"]
    for arm in record.summary.arms:
        section = sections[arm.arm]
        assert section.lstrip().startswith(KPI_HEADER)
        assert arm.accuracy is not None
        acc = arm.accuracy
        assert (
            f"| accuracy | {acc.value * 100:.1f}% | "
            f"[{acc.low * 100:.1f}%, {acc.high * 100:.1f}%] | {acc.n} |" in section
        )
        assert f"| macro-F1 | {arm.macro_f1:.3f} |" in section
        assert "latency total (ms) P50 / P95 / P99" in section
        assert "cost per 1,000 requests" in section
    for comparison in record.summary.comparisons:
        verdict = comparison.verdict
        assert (f"- **{verdict}**" if comparison.significant else f"- {verdict}") in markdown
    assert "| training cost (one-off) | $3.42 |" in sections["finetune"]
    assert "### Online feedback" in sections["finetune"]
    assert "| online: satisfaction | 64.0% | [58.0%, 70.0%] | 240 |" in sections["finetune"]
    assert "Online feedback" not in sections["prompt"]
    # A `|` in free text stays inside its cell.
    assert "| **note** | held-out split \\| never trained on <b> |" in markdown


def test_retrieval_trial_reports_recall_and_mrr_without_a_confusion_matrix() -> None:
    record, cases = retrieval_trial()
    assert record.summary is not None
    markdown = render_report(record, cases, "md")
    assert "| arm | recall@k | cost / 1k requests |" in markdown
    for arm in record.summary.arms:
        section = _arm_sections(markdown)[arm.arm]
        assert arm.recall_at_k is not None
        assert arm.mrr is not None
        assert f"| recall@k | {arm.recall_at_k.value:.3f} |" in section
        assert f"| MRR | {arm.mrr.value:.3f} |" in section
        assert "accuracy" not in section
    assert "latency rerank (ms)" in _arm_sections(markdown)["hybrid-rerank"]
    assert "confusion" not in markdown.lower()
    assert f"({record.id}-quality-cost.png)" in markdown


def test_markdown_writes_each_linked_plot_as_a_png_beside_it(tmp_path: Path) -> None:
    record, cases = classification_trial()
    out = tmp_path / "reports" / "triage.md"
    written = write_report(record, cases, "md", out)
    names = [path.name for path in written]
    assert names == [
        "triage.md",
        "triage-quality-cost.png",
        "triage-latency.png",
        "triage-confusion-prompt.png",
        "triage-confusion-rag.png",
        "triage-confusion-finetune.png",
    ]
    markdown = out.read_text()
    for path in written[1:]:
        assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert path.stat().st_size > 5_000
        assert f"]({path.name})" in markdown


def test_json_round_trips_into_the_trial_record(tmp_path: Path) -> None:
    for record, cases in (classification_trial(), retrieval_trial()):
        text = render_report(record, cases, "json")
        assert msgspec.json.decode(text, type=TrialRecord) == record
        (written,) = write_report(record, cases, "json", tmp_path / f"{record.feature}.json")
        assert msgspec.json.decode(written.read_bytes(), type=TrialRecord) == record


@pytest.mark.parametrize(
    ("trial", "plots"),
    [
        (
            classification_trial,
            ["quality-cost", "latency", *(f"confusion-{a}" for a in ("prompt", "rag", "finetune"))],
        ),
        (retrieval_trial, ["quality-cost", "latency"]),
    ],
)
def test_html_is_self_contained_with_one_svg_per_plot(
    trial: Callable[[], tuple[TrialRecord, Cases]], plots: list[str], tmp_path: Path
) -> None:
    record, cases = trial()
    assert record.summary is not None
    html = render_report(record, cases, "html")
    assert html.count("<svg") == len(plots)
    assert re.findall(r'<figure class="plot" id="plot-([^"]+)"><svg', html) == plots
    assert "<script" not in html.lower()
    assert re.search(r"""(src|href)=["']?(https?:|//)""", html) is None
    assert html.count('<section class="arm"') == len(record.arms)
    assert html.count("<th>95% interval</th>") >= len(record.arms)
    for comparison in record.summary.comparisons:
        assert comparison.verdict in html
    assert "held-out split | never trained on &lt;b&gt;" in html
    (written,) = write_report(record, cases, "html", tmp_path / "r.html")
    assert written.read_text() == html


def test_html_shows_online_feedback_only_for_arms_that_have_it() -> None:
    record, cases = classification_trial()
    html = render_report(record, cases, "html")
    sections = re.split(r'<section class="arm" id="arm-', html)[1:]
    with_online = [s.split('"', 1)[0] for s in sections if "<h3>Online feedback</h3>" in s]
    assert with_online == ["finetune"]
    assert '<td>online: completion</td><td class="num">81.0%</td>' in html


def test_a_trial_without_a_summary_has_no_report() -> None:
    record, cases = classification_trial()
    running = msgspec.structs.replace(record, status="running", summary=None)
    for fmt in ("md", "html", "json"):
        with pytest.raises(ConflictError, match="no summary yet") as caught:
            render_report(running, cases, fmt)
        assert caught.value.field == "summary"


def test_labels_are_printed_as_written_never_as_mathtext() -> None:
    record, _ = classification_trial()
    assert record.summary is not None
    arm = msgspec.structs.replace(
        record.summary.arms[0], confusion={"$5 plan": {"$5 plan": 3, "(other)": 1}}
    )
    plot = confusion_plot(arm)
    assert plot is not None
    assert "$5 plan" in plot_svg(plot)


def test_the_headline_skips_a_quality_kpi_that_is_zero_on_every_arm() -> None:
    # A label trial of a model that never names a label: accuracy 0 everywhere says nothing
    # the recall@k column does not, so the scatter and "at a glance" show recall instead.
    from trivium.common.contracts.trials import Estimate
    from trivium.trials.report.tables import headline_quality

    record, _ = retrieval_trial()
    assert record.summary is not None
    zero = Estimate(value=0.0, low=0.0, high=0.0, n=40)
    arms = [msgspec.structs.replace(arm, accuracy=zero) for arm in record.summary.arms]
    assert headline_quality(arms) == ("recall_at_k", "recall@k", "score")
    one_right = [msgspec.structs.replace(arms[0], accuracy=Estimate(0.5, 0.2, 0.8, 40))]
    assert headline_quality(one_right + arms[1:])[0] == "accuracy"  # type: ignore[index]
    assert headline_quality([]) is None
