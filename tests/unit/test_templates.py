"""The template kind: publish-time validation, sandboxed rendering, template files, hashes."""

from __future__ import annotations

from typing import Any

import pytest

from trivium.registry import TEMPLATE_KIND, ArtifactVersion, TemplateRenderer
from trivium.registry.errors import InvalidArtifactError
from trivium.registry.store import content_hash
from trivium.registry.templates import RenderError, TemplateKind, parse_template_file

RAG = (
    "Answer from the passages.\n"
    "{% for p in passages %}[{{ loop.index }}] {{ p.title }}: {{ p.text }}\n{% endfor %}"
    "Q: {{ question }}\nA:"
)


def template(body: str, variables: list[str], version: int = 1) -> ArtifactVersion:
    metadata = TEMPLATE_KIND.validate(body, {"variables": variables})
    return ArtifactVersion(
        kind="template",
        name="qa",
        version=version,
        sha256=content_hash(body, metadata),
        body=body,
        metadata=metadata,
        created_at=0.0,
        created_by="tests",
    )


# -- validation at publish time ----------------------------------------------------------


def test_valid_template_normalises_declared_variables() -> None:
    metadata = {"variables": ["question", "passages", "question"], "description": "RAG"}
    normalised = TemplateKind().validate(RAG, metadata)
    assert normalised == {"variables": ["passages", "question"], "description": "RAG"}
    assert metadata["variables"] == ["question", "passages", "question"]  # input untouched
    assert TEMPLATE_KIND.name == "template"


def test_template_without_variables_needs_no_declaration() -> None:
    assert TEMPLATE_KIND.validate("Say hello.", {}) == {"variables": []}
    assert TEMPLATE_KIND.validate("{% set x = 1 %}{{ x }}", {}) == {"variables": []}


@pytest.mark.parametrize(
    "body", ["{{ question ", "{% for p in passages %}", "{% if %}x{% endif %}"]
)
def test_syntax_error_names_the_body(body: str) -> None:
    with pytest.raises(InvalidArtifactError, match="template does not compile") as excinfo:
        TEMPLATE_KIND.validate(body, {"variables": ["question", "passages"]})
    assert excinfo.value.field == "body"
    assert excinfo.value.status_code == 400
    assert excinfo.value.code == "invalid_artifact"
    assert "line 1" in excinfo.value.message


def test_undeclared_variable_is_named() -> None:
    with pytest.raises(InvalidArtifactError) as excinfo:
        TEMPLATE_KIND.validate(
            "{{ question }} {{ context }} {{ zeta }}", {"variables": ["question"]}
        )
    error = excinfo.value
    assert error.field == "metadata.variables"
    assert "context" in error.message
    assert "zeta" in error.message
    assert error.extra == {"undeclared": ["context", "zeta"]}


@pytest.mark.parametrize(
    "body",
    [
        '{% include "other" %}',
        '{% extends "base" %}',
        '{% import "macros" as m %}',
        '{% from "macros" import f %}',
        "{% include question %}",
    ],
)
def test_include_import_and_extends_are_rejected(body: str) -> None:
    with pytest.raises(InvalidArtifactError, match="may not include, import or extend") as excinfo:
        TEMPLATE_KIND.validate(body, {"variables": ["question"]})
    assert excinfo.value.field == "body"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ("question", "must be a list of variable names"),
        ({"question": "str"}, "must be a list of variable names"),
        (["question", 3], "must be a list of variable names"),
        (None, "must be a list of variable names"),
        (["bad-name"], "invalid variable name(s): 'bad-name'"),
        (["1st"], "invalid variable name(s): '1st'"),
    ],
)
def test_bad_variables_declaration(variables: Any, message: str) -> None:
    with pytest.raises(InvalidArtifactError) as excinfo:
        TEMPLATE_KIND.validate("hello", {"variables": variables})
    assert excinfo.value.field == "metadata.variables"
    assert message in excinfo.value.message


# -- rendering ---------------------------------------------------------------------------


def test_render_loops_over_a_list_of_dicts() -> None:
    passages = [{"title": "Paris", "text": "capital of France"}, {"title": "Lyon", "text": "food"}]
    text = TemplateRenderer().render(
        template(RAG, ["question", "passages"]),
        {"question": "What is Paris?", "passages": passages},
    )
    assert text == (
        "Answer from the passages.\n"
        "[1] Paris: capital of France\n"
        "[2] Lyon: food\n"
        "Q: What is Paris?\nA:"
    )


def test_render_keeps_trailing_newline_and_does_not_escape() -> None:
    text = TemplateRenderer().render(template("<b>{{ x }}</b>\n", ["x"]), {"x": "a & b"})
    assert text == "<b>a & b</b>\n"


def test_missing_variable_is_named() -> None:
    with pytest.raises(RenderError) as excinfo:
        TemplateRenderer().render(template(RAG, ["question", "passages"]), {"question": "q"})
    error = excinfo.value
    assert error.field == "input.passages"
    assert "passages" in error.message
    assert "qa@1" in error.message
    assert error.extra == {"missing": ["passages"]}
    assert error.status_code == 400


def test_extra_variable_is_named() -> None:
    with pytest.raises(RenderError) as excinfo:
        TemplateRenderer().render(template("{{ x }}", ["x"]), {"x": 1, "bogus": 2})
    assert excinfo.value.field == "input.bogus"
    assert "bogus" in excinfo.value.message
    assert excinfo.value.extra == {"unexpected": ["bogus"]}


@pytest.mark.parametrize(
    "body",
    [
        "{{ x.__class__.__mro__ }}",
        "{{ x.__class__.__mro__[1].__subclasses__() }}",
        "{{ x.__class__() }}",
        "{{ x.upper.__globals__ }}",
        "{{ items.append(1) }}",
        "{{ items.__setitem__(0, 1) }}",
    ],
)
def test_sandbox_blocks_unsafe_access(body: str) -> None:
    items = [0]
    with pytest.raises(RenderError, match="failed to render") as excinfo:
        TemplateRenderer().render(template(body, ["items", "x"]), {"x": "text", "items": items})
    assert excinfo.value.field == "input"
    assert items == [0]


def test_compiled_templates_follow_the_content() -> None:
    renderer = TemplateRenderer()
    assert renderer.render(template("A {{ x }}", ["x"], 1), {"x": 1}) == "A 1"
    assert renderer.render(template("B {{ x }}", ["x"], 2), {"x": 1}) == "B 1"
    assert renderer.render(template("A {{ x }}", ["x"], 1), {"x": 2}) == "A 2"


@pytest.mark.parametrize(
    ("body", "variables"),
    [
        ("{{ a // b }}", {"a": 1, "b": 0}),  # ZeroDivisionError escapes render()
        ("{{ range(n) | length }}", {"n": 10**6}),  # the sandbox's OverflowError escapes
    ],
)
def test_failures_inside_the_template_are_render_errors(
    body: str, variables: dict[str, Any]
) -> None:
    # render() maps only UndefinedError, SecurityError, TypeError and ValueError; other
    # exceptions raised while rendering user input (ZeroDivisionError, the sandbox's
    # "Range too big" OverflowError) escape as non-Trivium errors, i.e. HTTP 500.
    outcome: Exception | None = None
    try:
        TemplateRenderer().render(template(body, sorted(variables)), variables)
    except Exception as error:
        outcome = error
    assert isinstance(outcome, RenderError), (
        f"BUG: rendering {body!r} with {variables} raised {outcome!r}, not a RenderError"
    )
    assert outcome.field == "input"


# -- template files ------------------------------------------------------------------------


def test_template_file_without_front_matter() -> None:
    assert parse_template_file("Q: {{ q }}\n") == ("Q: {{ q }}\n", {})


def test_template_file_with_front_matter() -> None:
    text = "---\nvariables: [question]\ndescription: plain QA\n---\nQ: {{ question }}\nA:\n"
    body, metadata = parse_template_file(text)
    assert body == "Q: {{ question }}\nA:\n"
    assert metadata == {"variables": ["question"], "description": "plain QA"}
    assert TEMPLATE_KIND.validate(body, metadata)["variables"] == ["question"]


def test_template_file_with_invalid_front_matter() -> None:
    with pytest.raises(InvalidArtifactError, match="front matter is not valid YAML") as excinfo:
        parse_template_file("---\nvariables: [question\n---\nbody\n")
    assert excinfo.value.field == "metadata"
    with pytest.raises(InvalidArtifactError, match="must be a mapping") as excinfo:
        parse_template_file("---\n- question\n---\nbody\n")
    assert excinfo.value.field == "metadata"


# -- content hash ----------------------------------------------------------------------------


def test_content_hash_is_stable_and_ignores_key_order() -> None:
    metadata = {"variables": ["q"], "description": "d", "extra": {"b": 1, "a": [1, 2]}}
    reordered = {"extra": {"a": [1, 2], "b": 1}, "description": "d", "variables": ["q"]}
    digest = content_hash("Q: {{ q }}", metadata)
    assert len(digest) == 64
    assert int(digest, 16) >= 0
    assert content_hash("Q: {{ q }}", dict(metadata)) == digest
    assert content_hash("Q: {{ q }}", reordered) == digest


def test_content_hash_covers_body_and_metadata() -> None:
    digest = content_hash("Q: {{ q }}", {"variables": ["q"]})
    assert content_hash("Q: {{ q }} ", {"variables": ["q"]}) != digest
    assert content_hash("Q: {{ q }}", {"variables": ["q"], "description": "x"}) != digest
    assert content_hash("Q: {{ q }}", {"variables": ["q", "r"]}) != digest
    # The list order of a value is content, unlike the order of keys.
    assert content_hash("x", {"v": [1, 2]}) != content_hash("x", {"v": [2, 1]})
