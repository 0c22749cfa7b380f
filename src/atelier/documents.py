"""What every JSON document Atelier accepts must be, checked once where it is parsed.

Python's JSON parser accepts more than JSON and more than the rest of Atelier can store:
``NaN`` and ``Infinity``, strings with unpaired surrogates (``"\\ud800"``, which no UTF-8
encoder writes), and nesting so deep that serializing it later overflows the stack. A
document is refused here, with the field named, instead of failing later as a 500 after
something was half done.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from atelier.errors import MalformedJson, ValidationFailed

DEFAULT_MAX_DEPTH = 64
_SURROGATE = re.compile("[\ud800-\udfff]")
# On the raw bytes, so the common document costs two C-speed scans and no walk:
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')  # a JSON string literal
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_DELTA = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # how a surrogate gets into JSON


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def nesting(raw: bytes) -> int:
    """How deeply the containers of a JSON text nest, without parsing it."""
    brackets = _STRING.sub(b"", raw).translate(None, delete=_NOT_BRACKET)
    return max(accumulate(map(_DELTA.__getitem__, brackets)), default=0)


def parse_json(raw: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse and check a JSON document; raises MalformedJson or ValidationFailed.

    The depth is measured before parsing (the parser recurses), and strings are walked
    only when the text has a surrogate escape at all."""
    depth = nesting(raw)
    if depth > 4 * max_depth:
        raise _too_deep("", max_depth)  # too deep to be worth parsing for the field's name
    deep = depth > max_depth
    try:
        value = json.loads(raw, parse_constant=_no_constants)
    except RecursionError as exc:
        raise _too_deep("", max_depth) from exc
    except UnicodeDecodeError as exc:
        raise MalformedJson("the request body is not valid UTF-8") from exc
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, ints over 4300 digits
        raise MalformedJson(f"the request body is not valid JSON: {exc}") from exc
    if deep or _SURROGATE_ESCAPE.search(raw):
        check_document(value, max_depth=max_depth)  # finds the field to name
    return value


def check_document(value: Any, *, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
    """Refuse nesting deeper than ``max_depth`` and strings that are not valid Unicode.

    Iterative, so the check itself cannot overflow the stack; each container is visited
    once."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            _check_string(item, path)
        elif isinstance(item, dict | list):
            if len(path) >= max_depth:
                raise _too_deep(_field(path), max_depth)
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_string(str(key), (*path, key))
                    stack.append((child, (*path, key)))
            else:
                stack.extend((child, (*path, index)) for index, child in enumerate(item))


def _check_string(text: str, path: tuple[str | int, ...]) -> None:
    found = _SURROGATE.search(text)
    if found is not None:
        reason = (
            f"contains an unpaired surrogate (U+{ord(found.group()):04X}); "
            "strings must be valid Unicode"
        )
        field = _field(path)
        raise ValidationFailed(
            f"{field or 'body'}: {reason}", errors=[{"field": field, "reason": reason}]
        )


def _too_deep(field: str, max_depth: int) -> ValidationFailed:
    reason = f"nested deeper than {max_depth} levels"
    return ValidationFailed(
        f"{field or 'body'}: {reason}", errors=[{"field": field or "body", "reason": reason}]
    )


def _field(path: tuple[str | int, ...]) -> str:
    """The path as text that can be sent back (a surrogate in a key shows as ``\\udfff``)."""
    return ".".join(str(p).encode("utf-8", "backslashreplace").decode() for p in path)
