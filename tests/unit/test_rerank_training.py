"""The demo re-ranker's training: hard negatives, groups, a deterministic build that loads as
the retriever's `Reranker` and puts a question's own passage first."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from trivium.cli.demo_data import PUBMEDQA_RERANK_TRAINING, encode_jsonl, shipped
from trivium.cli.demo_reranker import (
    RERANK_MODEL_DIR_ENV,
    BuiltReranker,
    build_demo_reranker,
    demo_reranker_dir,
    demo_reranker_env,
)
from trivium.retriever.config import RetrieverSettings
from trivium.retriever.search.rerank import RerankCandidate, Reranker
from trivium.retriever.training.cross_encoder import CrossEncoderTrainingConfig, training_groups
from trivium.retriever.training.negatives import hard_negatives
from trivium.retriever.training.questions import (
    TrainingPassage,
    TrainingQuestion,
    decode_questions,
    passage_text,
)


def _question(n: int, question: str, *texts: str) -> TrainingQuestion:
    return TrainingQuestion(
        id=f"q{n}",
        question=question,
        passages=[TrainingPassage(title="Results", text=t) for t in texts],
    )


TOY = [
    _question(0, "Does aspirin prevent stroke?", "Aspirin lowered stroke rates.", "Methods."),
    _question(1, "Is aspirin safe in children?", "Reye syndrome after aspirin in children."),
    _question(2, "Does coffee cause insomnia?", "Coffee drinkers slept less.", "Insomnia data."),
]


def test_hard_negatives_are_other_questions_passages_that_share_its_words() -> None:
    negatives = hard_negatives(TOY, per_question=2)
    assert all(ref[0] != qi for qi, refs in enumerate(negatives) for ref in refs)
    assert negatives[0][0] == (1, 0)  # "aspirin": the other aspirin question's passage
    assert negatives[1][0] == (0, 0)
    assert negatives[2] == []  # shares no word with another passage: groups fill in at random
    assert hard_negatives(TOY, per_question=2) == negatives  # deterministic


def test_groups_put_the_questions_own_passage_first_and_cycle_its_passages() -> None:
    config = CrossEncoderTrainingConfig(steps=3, groups_per_step=2, negatives=1)
    groups = training_groups(TOY, config)
    assert len(groups) == 6
    for question, texts in groups:
        own = next(q for q in TOY if q.question == question)
        assert texts[0] in {passage_text(p) for p in own.passages}
        assert not set(texts[1:]) & {passage_text(p) for p in own.passages}
        assert len(texts) == 2
    first_of_q0 = [texts[0] for question, texts in groups if question == TOY[0].question]
    assert first_of_q0 == [passage_text(p) for p in TOY[0].passages]  # the next one each time
    assert training_groups(TOY, config) == groups


def test_the_shipped_training_file_decodes() -> None:
    questions = decode_questions(shipped(*PUBMEDQA_RERANK_TRAINING).read_bytes())
    assert len(questions) == 800
    assert all(q.passages and q.question for q in questions)


# A slice of the shipped training questions, trained on for a few seconds.
SLICE = 4
CONFIG = CrossEncoderTrainingConfig(
    steps=12, groups_per_step=2, negatives=2, max_length=64, lr=3e-4, head_lr=3e-3, threads=1
)


def _slice() -> bytes:
    questions = decode_questions(shipped(*PUBMEDQA_RERANK_TRAINING).read_bytes())[:SLICE]
    return encode_jsonl(questions)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuiltReranker:
    data_dir = tmp_path_factory.mktemp("reranker")
    return build_demo_reranker(data_dir, CONFIG, training=_slice())


def test_the_build_loads_as_the_retrievers_reranker_and_ranks_own_passages_first(
    built: BuiltReranker,
) -> None:
    assert built.trained
    assert built.report is not None
    assert built.report.last_loss < built.report.first_loss
    reranker = Reranker(built.model_dir)
    questions = decode_questions(_slice())
    candidates = [
        (q.id, RerankCandidate(passage_text(p), f"{q.id}-{n}"))
        for q in questions
        for n, p in enumerate(q.passages)
    ]
    firsts = []
    for question in questions:
        scores = reranker.score(question.question, [c for _, c in candidates])
        best = max(range(len(candidates)), key=scores.__getitem__)
        firsts.append(candidates[best][0] == question.id)
    # Chance would put an own passage first for about one question in four.
    assert sum(firsts) >= 2, firsts


def test_the_build_is_deterministic_and_skipped_when_present(
    built: BuiltReranker, tmp_path: Path
) -> None:
    data_dir = built.model_dir.parents[2]
    again = build_demo_reranker(data_dir, CONFIG, training=_slice())
    assert not again.trained
    assert again.model_dir == built.model_dir
    short = dataclasses.replace(CONFIG, steps=2)
    weights = [
        build_demo_reranker(tmp_path / name, short, training=_slice()).model_dir
        / "model.safetensors"
        for name in ("a", "b")
    ]
    assert weights[0].read_bytes() == weights[1].read_bytes()


def test_up_points_the_retriever_at_a_built_reranker_unless_one_is_configured(
    built: BuiltReranker, tmp_path: Path
) -> None:
    data_dir = built.model_dir.parents[2]
    settings = RetrieverSettings(data_dir=data_dir)
    assert demo_reranker_env(settings) == {RERANK_MODEL_DIR_ENV: str(demo_reranker_dir(data_dir))}
    assert demo_reranker_env(RetrieverSettings(data_dir=tmp_path)) == {}
    configured = settings.model_copy(
        update={
            "retriever": settings.retriever.model_copy(
                update={
                    "rerank": settings.retriever.rerank.model_copy(update={"model_dir": tmp_path})
                }
            )
        }
    )
    assert demo_reranker_env(configured) == {}
