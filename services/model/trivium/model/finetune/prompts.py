"""How an example becomes tokens, exactly as the serving side will see it.

The prompt is the conversation rendered the way the model service renders a
`/v1/chat/completions` request (`TransformersEngine.render_chat`): the tokenizer's chat
template with the generation prompt, or, for a tokenizer without one, ``"{role}: {content}\\n"``
per message followed by ``"assistant:"``. The prompt is tokenized on its own (as the engine
encodes it, without added special tokens); the completion's tokens and the end-of-sequence
token follow, and only those are trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from trivium.common.errors import InvalidInputError
from trivium.model.finetune.dataset import Example, Message
from trivium.model.finetune.loop import IGNORE_INDEX

__all__ = (
    "Encoded",
    "collate_prompts",
    "collate_training",
    "encode_examples",
    "prompt_format",
    "render_prompt",
)


@dataclass(frozen=True)
class Encoded:
    prompt_ids: list[int]
    completion_ids: list[int]
    """The completion's tokens followed by the end-of-sequence token."""
    completion: str
    line: int


def render_prompt(tokenizer: Any, messages: Sequence[Message]) -> str:
    turns = [message.as_dict() for message in messages]
    if getattr(tokenizer, "chat_template", None):
        text: str = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        return text
    return "".join(f"{m.role}: {m.content}\n" for m in messages) + "assistant:"


def prompt_format(tokenizer: Any, max_completion_tokens: int) -> dict[str, Any]:
    """The metadata that lets a server (or a person) reproduce the training prompts."""
    template = getattr(tokenizer, "chat_template", None)
    example = render_prompt(tokenizer, [Message("user", "<prompt>")])
    return {
        "style": "chat",
        "serve_as": "chat completion: messages=[{role: user, content: <prompt>}] "
        "(chat records: their messages before the final assistant turn)",
        "chat_template": template if isinstance(template, str) else None,
        "fallback": None if template else "'{role}: {content}\\n' per message, then 'assistant:'",
        "rendered_example": example,
        "completion": "the completion text, then the eos token; greedy decoding",
        "eos_token": tokenizer.eos_token,
        "max_completion_tokens": max_completion_tokens,
    }


def encode_examples(tokenizer: Any, examples: Sequence[Example], context: int) -> list[Encoded]:
    """Tokenize each example; one that does not fit the model's context is an input error."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise InvalidInputError("the base model's tokenizer has no eos token", field="base")
    encoded = []
    for example in examples:
        prompt_ids = _ids(tokenizer, render_prompt(tokenizer, example.prompt))
        completion_ids = [*_ids(tokenizer, example.completion), eos]
        length = len(prompt_ids) + len(completion_ids)
        if length > context:
            raise InvalidInputError(
                f"line {example.line}: the example is {length} tokens; "
                f"the base model's context is {context}",
                field=f"data:line {example.line}",
            )
        encoded.append(Encoded(prompt_ids, completion_ids, example.completion, example.line))
    return encoded


def _ids(tokenizer: Any, text: str) -> list[int]:
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids


def collate_training(rows: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded prompt+completion rows; labels only on the completion and its eos."""
    width = max(len(r.prompt_ids) + len(r.completion_ids) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for i, row in enumerate(rows):
        ids = row.prompt_ids + row.completion_ids
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention_mask[i, : len(ids)] = 1
        labels[i, len(row.prompt_ids) : len(ids)] = torch.tensor(row.completion_ids)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def collate_prompts(rows: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-padded prompts for generation (the padding side the engine uses)."""
    width = max(len(r.prompt_ids) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        start = width - len(row.prompt_ids)
        input_ids[i, start:] = torch.tensor(row.prompt_ids)
        attention_mask[i, start:] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}
