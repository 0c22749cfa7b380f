"""A corpus of hostile requests, for the bad-input test and ``python -m bench hostile``.

Every probe must be answered with a 4xx problem document, quickly, without writing
anything, and the server must go on serving. The corpus is built from the server's own
OpenAPI document, so a new route is probed without anyone remembering to add it.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

JsonDict = dict[str, Any]

# A small valid graph; probes break one thing in it at a time.
GRAPH: JsonDict = {
    "1": {
        "class_type": "EmptyImage",
        "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0},
    },
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
}

HOSTILE_IDS = [
    "../../../etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2f",
    "..\\..\\windows\\win.ini",
    "/etc/passwd",
    "99999999999999999999999999999999",
    "-1",
    "0",
    "%00",
    "%ed%a0%80",  # an encoded unpaired surrogate
    "%ff%fe",  # invalid UTF-8
    "x" * 5000,
    "' OR 1=1 --",
]

LAST_EVENT_IDS = [
    "99999999999999999999999999",
    "9223372036854775808",
    "-1",
    "1e9",
    "abc",
    "\u0661\u0662\u0663",  # Arabic-Indic digits: isdigit() but not an id
    "1 2",
]

RANGES = [
    "bytes=-0",
    "bytes=999999999999999999999999-",
    "bytes=5-1",
    "bytes=a-b",
    "bytes=0-1,3-4,6-7",
    "bytes=--1",
    "items=0-1",
    "bytes=" + "0-1," * 2000,
]


@dataclass(frozen=True)
class Probe:
    name: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    # A probe whose answer may legitimately be a success (an id that could exist).
    may_succeed: bool = False


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _graph(**changes: Any) -> JsonDict:
    graph: JsonDict = json.loads(json.dumps(GRAPH))
    for path, value in changes.items():
        node, name = path.split("__")
        graph[node]["inputs"][name] = value
    return graph


def _deep(depth: int, opener: str = "[", closer: str = "]") -> bytes:
    return (opener * depth + closer * depth).encode()


def _deep_object(depth: int) -> bytes:
    return ('{"a":' * depth + "1" + "}" * depth).encode()


def bodies() -> Iterator[tuple[str, bytes]]:
    """Bodies that every JSON route must refuse."""
    yield "deep-array-10000", _deep(10_000)
    yield "deep-object-10000", _deep_object(10_000)
    yield "deep-array-200", _deep(200)
    yield "nan", b'{"graph": {"1": {"class_type": "X", "inputs": {"v": NaN}}}}'
    yield "infinity", b'{"priority": Infinity}'
    yield "minus-infinity", b'{"priority": -Infinity}'
    yield "invalid-utf8", b'{"graph": "\xff\xfe\xfd"}'
    yield "surrogate", b'{"name": "\\ud800", "graph": {"\\udfff": 1}}'
    yield "huge-int-4301-digits", b'{"priority": ' + b"9" * 4301 + b"}"
    yield "not-json", b"{'graph': }"
    yield "truncated", b'{"graph": {"1": '
    yield "array", b"[]"
    yield "null", b"null"


def job_bodies() -> Iterator[tuple[str, bytes]]:
    """Bodies that POST /api/v1/jobs must refuse besides the generic ones."""
    yield "self-link", _json({"graph": _graph(**{"2__images": ["2", 0]})})
    cyclic = _graph()
    cyclic["3"] = {"class_type": "ImageInvert", "inputs": {"image": ["4", 0]}}
    cyclic["4"] = {"class_type": "ImageInvert", "inputs": {"image": ["3", 0]}}
    cyclic["2"]["inputs"]["images"] = ["4", 0]
    yield "cycle", _json({"graph": cyclic})
    yield "link-to-missing-node", _json({"graph": _graph(**{"2__images": ["99", 0]})})
    yield "link-to-missing-output", _json({"graph": _graph(**{"2__images": ["1", 7]})})
    yield "negative-output", _json({"graph": _graph(**{"2__images": ["1", -1]})})
    for prefix in ["../../x", "/tmp/x", "..\\..\\x", "C:\\x", "a/../../b", "x\u0000y"]:
        yield (
            f"filename-prefix-{prefix!r}",
            _json({"graph": _graph(**{"2__filename_prefix": prefix})}),
        )
    yield "huge-width", _json({"graph": _graph(**{"1__width": 10**100})})
    yield "negative-width", _json({"graph": _graph(**{"1__width": -(10**30)})})
    yield "huge-priority", _json({"graph": GRAPH, "priority": 10**30})
    yield "negative-priority", _json({"graph": GRAPH, "priority": -(10**30)})
    yield "float-priority", _json({"graph": GRAPH, "priority": 1.5})
    yield (
        "graph-100000-nodes",
        _json(
            {
                "graph": {
                    str(i): {"class_type": "ImageInvert", "inputs": {"image": [str(i + 1), 0]}}
                    for i in range(100_000)
                }
            }
        ),
    )
    yield (
        "deep-metadata-900",
        b'{"graph": ' + _json(GRAPH) + b', "metadata": ' + _deep_object(900) + b"}",
    )
    yield "surrogate-label", b'{"graph": ' + _json(GRAPH) + b', "labels": {"a": "\\ud800"}}'
    yield "surrogate-label-empty-graph", b'{"graph": {}, "labels": {"a": "\\ud800"}}'
    yield "labels-not-strings", _json({"graph": GRAPH, "labels": {"a": {"b": 1}}})
    yield "unknown-workflow", _json({"workflow": "../../etc/passwd", "params": {}})
    yield (
        "webhook-to-metadata",
        _json({"graph": GRAPH, "webhook": {"url": "http://[2002:a9fe:a9fe::]/latest/meta-data"}}),
    )


def probes(openapi: JsonDict, *, job_id: str, artifact_id: str) -> Iterator[Probe]:
    """Every probe for a server whose OpenAPI document is ``openapi``."""
    json_type = {"content-type": "application/json"}
    for path, operations in openapi.get("paths", {}).items():
        for method, operation in operations.items():
            method = method.upper()
            content = (operation.get("requestBody") or {}).get("content") or {}
            typed_workflow = path.startswith("/api/v1/workflows/") and path.endswith("/jobs")
            if typed_workflow and path != "/api/v1/workflows/invert/jobs":
                continue  # one typed workflow route stands for all of them
            concrete = path.replace("{job_id}", job_id).replace("{name}", "invert")
            concrete = concrete.replace("{artifact_id}", artifact_id)
            if "application/json" in content and "{" not in concrete:
                for name, body in bodies():
                    yield Probe(f"{method} {path} {name}", method, concrete, json_type, body)
            if "{" in path:
                for bad in HOSTILE_IDS:
                    filled = path
                    for parameter in (
                        "job_id",
                        "artifact_id",
                        "key_id",
                        "webhook_id",
                        "delivery_id",
                        "name",
                    ):
                        filled = filled.replace("{" + parameter + "}", quote(bad, safe="%"))
                    if "{" in filled:
                        continue
                    empty = b"{}" if "application/json" in content else None
                    name = f"{method} {path} id={bad[:40]!r}"
                    yield Probe(name, method, filled, json_type, empty)
    for name, body in job_bodies():
        yield Probe(f"POST /api/v1/jobs {name}", "POST", "/api/v1/jobs", json_type, body)
    for value in LAST_EVENT_IDS:
        for path in (f"/api/v1/jobs/{job_id}/events", "/api/v1/events"):
            yield Probe(
                f"GET {path} Last-Event-ID={value!r}", "GET", path, {"last-event-id": value}
            )
        yield Probe(
            f"GET events ?after={value!r}",
            "GET",
            f"/api/v1/jobs/{job_id}/events?after={quote(value)}",
        )
    for value in RANGES:
        yield Probe(
            f"GET artifact Range={value[:40]!r}",
            "GET",
            f"/api/v1/artifacts/{artifact_id}",
            {"range": value},
            may_succeed=True,
        )
    for query in [
        "limit=-1",
        "limit=99999999999999999999",
        "cursor=%ff%fe",
        "cursor=../../x",
        "status=bogus",
        "label=nocolon",
        "limit=NaN",
    ]:
        yield Probe(f"GET /api/v1/jobs?{query}", "GET", f"/api/v1/jobs?{query}")
    # Decoded with replacement characters: a filter that matches nothing, which is fine.
    yield Probe(
        "GET /api/v1/jobs?label=<invalid UTF-8>",
        "GET",
        "/api/v1/jobs?label=%ed%a0%80:x",
        may_succeed=True,
    )
    yield Probe(
        "POST /api/v1/jobs 50 MB declared",
        "POST",
        "/api/v1/jobs",
        {**json_type, "content-length": str(50 * 1024 * 1024)},
        b"",
    )
    yield Probe(
        "POST /api/v1/jobs 50 MB streamed",
        "POST",
        "/api/v1/jobs",
        {**json_type, "transfer-encoding": "chunked"},
        b"[" * (50 * 1024 * 1024),
    )


@dataclass
class Answer:
    probe: Probe
    status: int
    content_type: str
    body: bytes
    seconds: float


def send(host: str, port: int, probe: Probe, *, timeout: float = 60.0) -> Answer:
    """Send one probe over a plain socket (a client library would refuse some of them,
    and a 50 MB body must be answered before it is all sent). Reads one response."""
    started = time.monotonic()
    headers = {"host": f"{host}:{port}", "connection": "close", **probe.headers}
    body = probe.body
    chunked = headers.get("transfer-encoding") == "chunked"
    if body is not None and "content-length" not in headers and not chunked:
        headers["content-length"] = str(len(body))
    head = f"{probe.method} {probe.path} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(head.encode("utf-8", "surrogateescape") + b"\r\n")
        if body:
            try:
                for start in range(0, len(body), 1 << 20):
                    piece = body[start : start + (1 << 20)]
                    if chunked:
                        piece = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
                    sock.sendall(piece)
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # answered (413) before the whole body was sent: read the answer
        raw = _read_response(sock, streaming=probe.method == "GET")
    status, content_type, payload = _parse(raw)
    return Answer(probe, status, content_type, payload, time.monotonic() - started)


def _read_response(sock: socket.socket, *, streaming: bool) -> bytes:
    chunks: list[bytes] = []
    deadline = time.monotonic() + 5 if streaming else None
    while True:
        if deadline is not None:
            if time.monotonic() > deadline:
                break  # an event stream that was (rightly) opened: its head is enough
            sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(raw: bytes) -> tuple[int, str, bytes]:
    head, _, payload = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not lines or not lines[0].startswith(b"HTTP/"):
        return 0, "", raw
    status = int(lines[0].split()[1])
    content_type = ""
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-type":
            content_type = value.strip().decode("latin-1")
    return status, content_type, payload


def verdict(answer: Answer) -> str | None:
    """Why this answer is wrong, or None."""
    if answer.status == 0:
        return "no HTTP answer (connection closed or reset)"
    if answer.status >= 500:
        return f"{answer.status}: {answer.body[:300]!r}"
    if answer.probe.may_succeed and answer.status < 400:
        return None
    if answer.status < 400:
        return f"accepted ({answer.status}): {answer.body[:200]!r}"
    if not answer.content_type.startswith("application/problem+json"):
        return f"{answer.status} without a problem document ({answer.content_type})"
    return None
