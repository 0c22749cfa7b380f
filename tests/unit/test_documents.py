"""atelier.documents: what every JSON body must be, checked where it is parsed."""

from __future__ import annotations

import json

import pytest

from atelier.documents import check_document, nesting, parse_json
from atelier.errors import MalformedJson, ValidationFailed


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"1", 0),
        (b"[]", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'{"a": "[[[[{{{{", "b": "\\"[["}', 1),  # brackets inside strings do not count
        (b"[" * 5000 + b"]" * 5000, 5000),
    ],
)
def test_nesting_is_measured_without_parsing(text: bytes, depth: int) -> None:
    assert nesting(text) == depth


def test_too_deep_is_refused_with_the_field_named() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_json(json.dumps({"metadata": {"a": [[[[1]]]]}}).encode(), max_depth=4)
    assert caught.value.extra["errors"] == [
        {"field": "metadata.a.0.0", "reason": "nested deeper than 4 levels"}
    ]
    with pytest.raises(ValidationFailed):
        parse_json(b"[" * 100_000 + b"]" * 100_000)  # never reaches the recursive parser


def test_unpaired_surrogates_are_refused_in_values_and_keys() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_json(b'{"labels": {"a": "x\\ud800y"}}')
    assert caught.value.extra["errors"][0]["field"] == "labels.a"
    with pytest.raises(ValidationFailed) as caught:
        parse_json(b'{"labels": {"\\udc00": "x"}}')
    assert caught.value.extra["errors"][0]["field"] == "labels.\\udc00"  # sendable text
    assert parse_json(b'{"emoji": "\\ud83d\\ude00"}') == {"emoji": "\U0001f600"}  # a pair is fine


@pytest.mark.parametrize(
    "text", [b"NaN", b'{"a": Infinity}', b"[-Infinity]", b"\xff", b"9" * 5000, b"{"]
)
def test_what_is_not_json_is_malformed(text: bytes) -> None:
    with pytest.raises(MalformedJson):
        parse_json(text)


def test_check_document_serves_other_parsers_too() -> None:
    check_document({"a": ["b", {"c": "d"}]}, max_depth=3)
    with pytest.raises(ValidationFailed):
        check_document({"a": ["b", {"c": ["d"]}]}, max_depth=3)
