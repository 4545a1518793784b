"""Read documents from files for ingest: JSONL (one document per line), Markdown, plain text."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import msgspec

from trivium.common.contracts.retriever import DocumentIn
from trivium.common.errors import InvalidInputError

__all__ = ("SUFFIXES", "expand_paths", "read_documents")

SUFFIXES = (".jsonl", ".md", ".markdown", ".txt")


def expand_paths(paths: Sequence[Path]) -> list[tuple[Path, Path]]:
    """(file, the root its id is relative to), directories walked in sorted order."""
    files: list[tuple[Path, Path]] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
            files.extend((p, path) for p in found)
        elif path.is_file():
            if path.suffix not in SUFFIXES:
                raise InvalidInputError(
                    f"{path}: unsupported file type; use {', '.join(SUFFIXES)}", field="path"
                )
            files.append((path, path.parent))
        else:
            raise InvalidInputError(f"{path}: no such file or directory", field="path")
    return files


def read_documents(path: Path, root: Path) -> Iterator[DocumentIn]:
    if path.suffix == ".jsonl":
        yield from _read_jsonl(path)
        return
    text = path.read_text(encoding="utf-8")
    doc_id = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()
    yield DocumentIn(id=doc_id, text=text, title=_title(path, text), source=path.as_posix())


def _title(path: Path, text: str) -> str:
    if path.suffix in (".md", ".markdown"):
        for line in text.splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return path.stem


def _read_jsonl(path: Path) -> Iterator[DocumentIn]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{where}: not JSON ({exc.msg})", field="path") from exc
            if not isinstance(raw, dict):
                raise InvalidInputError(f"{where}: a line must be a JSON object", field="path")
            raw.setdefault("id", raw.pop("_id", None) or f"{path.name}:{number}")
            raw.setdefault("source", f"{path.as_posix()}#{number}")
            try:
                yield msgspec.convert(raw, DocumentIn)
            except msgspec.ValidationError as exc:
                raise InvalidInputError(f"{where}: {exc}", field="path") from exc
