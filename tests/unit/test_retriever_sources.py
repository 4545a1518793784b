"""Reading documents from JSONL, Markdown and text files; content hashes and chunk ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trivium.common.contracts.retriever import DocumentIn
from trivium.common.errors import InvalidInputError
from trivium.retriever.indexing.documents import IndexRecipe, chunk_document, content_hash
from trivium.retriever.indexing.sources import expand_paths, read_documents

RECIPE = IndexRecipe("m", 100, 10, "bm25")


def test_directories_are_walked_and_each_format_read(tmp_path: Path) -> None:
    (tmp_path / "guide").mkdir()
    (tmp_path / "guide" / "setup.md").write_text("intro\n# Set up\nInstall it.")
    (tmp_path / "notes.txt").write_text("Plain notes.")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    rows = [{"_id": "7", "title": "T", "text": "A row.", "metadata": {"lang": "en"}}, {"text": "B"}]
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    docs = [d for path, root in expand_paths([tmp_path]) for d in read_documents(path, root)]
    by_id = {d.id: d for d in docs}
    assert sorted(by_id) == ["7", "guide/setup.md", "notes.txt", "rows.jsonl:2"]
    assert by_id["guide/setup.md"].title == "Set up"
    assert by_id["notes.txt"].title == "notes"
    assert by_id["7"].metadata == {"lang": "en"}
    assert by_id["rows.jsonl:2"].source.endswith("rows.jsonl#2")


@pytest.mark.parametrize(
    ("line", "message"),
    [("{not json", "rows.jsonl:1: not JSON"), ("[1]", "JSON object"), ('{"id": "x"}', "text")],
)
def test_a_bad_jsonl_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(InvalidInputError, match=message):
        list(read_documents(path, tmp_path))


def test_unsupported_or_missing_paths_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(b"%PDF")
    with pytest.raises(InvalidInputError, match="unsupported"):
        expand_paths([tmp_path / "a.pdf"])
    with pytest.raises(InvalidInputError, match="no such file"):
        expand_paths([tmp_path / "missing.md"])


def test_content_hash_covers_the_document_and_the_recipe() -> None:
    doc = DocumentIn(id="a", text="Some text. More text.", title="T")
    same = content_hash(doc, RECIPE)
    assert content_hash(DocumentIn(id="a", text="Some text. More text.", title="T"), RECIPE) == same
    assert content_hash(DocumentIn(id="a", text="Some text.", title="T"), RECIPE) != same
    assert content_hash(DocumentIn(id="a", text=doc.text, title="U"), RECIPE) != same
    assert content_hash(doc, IndexRecipe("m", 200, 10, "bm25")) != same


def test_chunk_ids_are_stable_per_content_and_differ_across_versions() -> None:
    doc = DocumentIn(id="a", text="One sentence here. " * 20)
    first = chunk_document(doc, "h1", RECIPE)
    assert [c.id for c in first] == [c.id for c in chunk_document(doc, "h1", RECIPE)]
    assert not {c.id for c in first} & {c.id for c in chunk_document(doc, "h2", RECIPE)}
    assert {c.payload["chunk_count"] for c in first} == {len(first)}
    assert all(doc.text[c.chunk.start : c.chunk.end] == c.payload["text"] for c in first)
