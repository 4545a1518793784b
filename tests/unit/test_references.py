"""Artifact references: `name`, `name@label`, `name@<version>`, and nothing else."""

from __future__ import annotations

import pytest

from trivium.common.http.error_mapping import problem_from
from trivium.common.http.problems import problem_body
from trivium.registry import DEFAULT_LABEL, Reference, parse_reference
from trivium.registry.errors import MalformedReferenceError
from trivium.registry.references import validate_label, validate_name


def test_bare_name_means_the_production_label() -> None:
    assert DEFAULT_LABEL == "production"
    ref = parse_reference("qa-bot")
    assert ref == Reference("qa-bot", label="production", version=None)
    assert str(ref) == "qa-bot@production"


def test_label_reference() -> None:
    ref = parse_reference("qa.bot_2@canary")
    assert ref == Reference("qa.bot_2", label="canary", version=None)
    assert str(ref) == "qa.bot_2@canary"


@pytest.mark.parametrize(
    ("text", "version"), [("qa@3", 3), ("qa@10", 10), ("qa@999999999", 999999999)]
)
def test_version_reference(text: str, version: int) -> None:
    ref = parse_reference(text)
    assert ref == Reference("qa", label=None, version=version)
    assert str(ref) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a@@b", "malformed reference 'a@@b'"),
        ("a@b@c", "malformed reference"),
        ("@x", "invalid name ''"),
        ("a@", "malformed reference 'a@'"),
        ("", "invalid name ''"),
        ("A@b", "invalid name 'A'"),
        ("Qa", "invalid name 'Qa'"),
        ("-qa", "invalid name '-qa'"),
        ("a" * 65, "invalid name"),
        ("a@0", "invalid version in 'a@0'"),
        ("a@01", "invalid version"),
        ("a@1234567890", "invalid version"),
        ("a@Canary", "invalid label 'Canary'"),
        ("a@1abc", "invalid label '1abc'"),
        ("a@-x", "invalid label '-x'"),
        ("a@" + "x" * 33, "invalid label"),
        ("a b@x", "invalid name 'a b'"),
    ],
)
def test_malformed_references_are_rejected(text: str, message: str) -> None:
    with pytest.raises(MalformedReferenceError) as excinfo:
        parse_reference(text)
    error = excinfo.value
    assert message in error.message
    assert error.field == "ref"
    assert error.status_code == 400
    assert error.code == "malformed_reference"
    assert problem_body(problem_from(error))["field"] == "ref"


def test_the_caller_names_the_field() -> None:
    with pytest.raises(MalformedReferenceError) as excinfo:
        parse_reference("a@@b", field="template")
    assert excinfo.value.field == "template"
    with pytest.raises(MalformedReferenceError) as excinfo:
        parse_reference("A@b", field="template")
    assert excinfo.value.field == "template"


def test_name_and_label_validation_name_their_field() -> None:
    assert validate_name("qa-bot") == "qa-bot"
    assert validate_label("canary") == "canary"
    with pytest.raises(MalformedReferenceError, match="invalid name 'Bad!'") as name_error:
        validate_name("Bad!")
    assert name_error.value.field == "name"
    with pytest.raises(MalformedReferenceError, match="invalid label 'Prod'") as label_error:
        validate_label("Prod")
    assert label_error.value.field == "label"
    with pytest.raises(MalformedReferenceError) as custom:
        validate_label("9", field="labels.9")
    assert custom.value.field == "labels.9"


@pytest.mark.parametrize("text", ["qa\n", "qa@canary\n", "qa\n@canary"])
def test_trailing_newline_is_not_part_of_a_valid_reference(text: str) -> None:
    # `^...$` in references.py lets a trailing "\n" through (`$` matches before a final
    # newline): "qa\n" would name a different artifact than "qa". fullmatch/`\Z` fixes it.
    try:
        ref = parse_reference(text)
    except MalformedReferenceError:
        return
    pytest.fail(f"BUG: parse_reference({text!r}) accepted a newline: {ref!r}")
