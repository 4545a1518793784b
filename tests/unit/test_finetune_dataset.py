"""Fine-tuning data: both record formats, errors that name the line, the split, the shipped set."""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest

from trivium.common.errors import InvalidInputError
from trivium.model.finetune.dataset import Message, dataset_sha256, load_dataset
from trivium.model.finetune.train import split_examples

TRIAGE_LABELS = {"billing", "bug", "account", "feature_request", "other"}


def write(tmp_path: Path, *lines: str | bytes) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_bytes(
        b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines)
    )
    return path


def record(**fields: object) -> str:
    return json.dumps(fields)


def test_prompt_completion_records_become_one_user_message(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        record(prompt="I was charged twice", completion="billing"),
        "",
        "   ",
        record(prompt="The app crashes", completion="bug", extra="ignored"),
    )
    examples = load_dataset(path)
    assert [e.line for e in examples] == [1, 4]
    assert examples[0].prompt == (Message("user", "I was charged twice"),)
    assert examples[0].completion == "billing"
    assert examples[1].prompt == (Message("user", "The app crashes"),)
    assert examples[1].completion == "bug"


def test_chat_records_split_at_the_last_assistant_message(tmp_path: Path) -> None:
    messages = [
        {"role": "system", "content": "Label the ticket."},
        {"role": "user", "content": "Can't log in"},
        {"role": "assistant", "content": "account"},
        {"role": "user", "content": "And the invoice is wrong"},
        {"role": "assistant", "content": "billing"},
    ]
    path = write(tmp_path, json.dumps({"messages": messages}))
    (example,) = load_dataset(path)
    assert example.completion == "billing"
    assert [m.role for m in example.prompt] == ["system", "user", "assistant", "user"]
    assert example.prompt[-1].content == "And the invoice is wrong"
    assert example.prompt[0].as_dict() == {"role": "system", "content": "Label the ticket."}


def test_both_formats_mix_in_one_file(tmp_path: Path) -> None:
    chat = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]}
    path = write(tmp_path, json.dumps(chat), record(prompt="p", completion="c"))
    assert [e.completion for e in load_dataset(path)] == ["x", "c"]


GOOD = record(prompt="fine", completion="other")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "line 3: is not JSON"),
        (record(prompt="only a prompt"), "line 3: missing 'completion'"),
        (record(completion="only a completion"), "line 3: missing 'prompt'"),
        (record(prompt="p", completion=3), "line 3: 'completion' must be a string, got int"),
        (record(prompt=["p"], completion="c"), "line 3: 'prompt' must be a string, got list"),
        (record(prompt="p", completion="  "), "line 3: 'completion' is empty"),
        ("[1, 2]", "line 3: expected a JSON object, got list"),
        ('"just a string"', "line 3: expected a JSON object, got str"),
        (json.dumps({"messages": "hello"}), "line 3: 'messages' must be a list, got str"),
        (json.dumps({"messages": [{"role": "user"}]}), "line 3: messages[0] is missing 'content'"),
        (json.dumps({"messages": ["hi"]}), "line 3: messages[0] must be an object, got str"),
        (
            json.dumps({"messages": [{"role": "bot", "content": "x"}]}),
            "line 3: messages[0].role must be one of assistant, system, user, not 'bot'",
        ),
        (
            json.dumps({"messages": [{"role": "user", "content": 5}]}),
            "line 3: 'messages[0].content' must be a string, got int",
        ),
        (
            json.dumps(
                {
                    "messages": [
                        {"role": "assistant", "content": "a"},
                        {"role": "user", "content": "u"},
                    ]
                }
            ),
            "line 3: the last message must be the assistant's, not 'user'",
        ),
        (
            json.dumps({"messages": [{"role": "assistant", "content": "a"}]}),
            "line 3: 'messages' needs a prompt and a final assistant message",
        ),
        (b"\xff\xfe not utf-8", "line 3: is not UTF-8 text"),
    ],
)
def test_bad_records_name_their_line(tmp_path: Path, bad: str | bytes, message: str) -> None:
    path = write(tmp_path, GOOD, "", bad, GOOD)
    with pytest.raises(InvalidInputError) as caught:
        load_dataset(path)
    assert caught.value.field == "data:line 3"
    assert caught.value.message.startswith(message), caught.value.message


@pytest.mark.parametrize("content", [b"", b"\n  \n\n"])
def test_a_file_without_records_is_an_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    with pytest.raises(InvalidInputError, match="holds no records") as caught:
        load_dataset(path)
    assert caught.value.field == "data"


def test_a_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="cannot read dataset") as caught:
        load_dataset(tmp_path / "absent.jsonl")
    assert caught.value.field == "data"


def test_split_is_seeded_disjoint_and_complete(tmp_path: Path) -> None:
    path = write(tmp_path, *(record(prompt=f"ticket {i}", completion="other") for i in range(50)))
    examples = load_dataset(path)
    train, held_out = split_examples(examples, 0.2, seed=0)
    again_train, again_held_out = split_examples(examples, 0.2, seed=0)
    _, other_held_out = split_examples(examples, 0.2, seed=1)
    assert (train, held_out) == (again_train, again_held_out)
    assert len(held_out) == 10
    assert len(train) == 40
    assert {e.line for e in train} | {e.line for e in held_out} == set(range(1, 51))
    assert not {e.line for e in train} & {e.line for e in held_out}
    assert held_out != other_held_out
    assert held_out != examples[:10], "the split must shuffle"


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_fractions_outside_zero_one(tmp_path: Path, fraction: float) -> None:
    examples = load_dataset(write(tmp_path, GOOD, GOOD))
    with pytest.raises(InvalidInputError) as caught:
        split_examples(examples, fraction, seed=0)
    assert caught.value.field == "eval_fraction"


def test_split_keeps_one_example_on_each_side(tmp_path: Path) -> None:
    examples = load_dataset(write(tmp_path, GOOD, GOOD))
    train, held_out = split_examples(examples, 0.9, seed=0)
    assert (len(train), len(held_out)) == (1, 1)
    with pytest.raises(InvalidInputError, match="at least 2 examples"):
        split_examples(examples[:1], 0.5, seed=0)


def test_the_shipped_triage_set_is_large_balanced_and_unique() -> None:
    data = resources.files("trivium.model.data").joinpath("triage.jsonl")
    with resources.as_file(data) as path:
        examples = load_dataset(path)
        assert len(dataset_sha256(path)) == 64
    assert len(examples) >= 300
    counts = Counter(e.completion for e in examples)
    assert set(counts) == TRIAGE_LABELS
    assert max(counts.values()) - min(counts.values()) <= len(examples) // 20
    prompts = [e.prompt[0].content for e in examples]
    assert len(set(prompts)) == len(prompts), "duplicate tickets would leak into the eval split"
    assert all(len(e.prompt) == 1 and e.prompt[0].role == "user" for e in examples)


def test_the_shipped_corpus_is_there() -> None:
    text = resources.files("trivium.model.data").joinpath("corpus.txt").read_text("utf-8")
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) >= 300
