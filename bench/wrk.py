"""Load from ``wrk`` (Debian's package): a C load generator that outruns any Python
server, so what it measures is the server. One Lua script serves every request shape."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

WRK = shutil.which("wrk") or "/usr/bin/wrk"

# Requests cycle through PATHS; a POST carries BODY. wrk's own summary stays on stdout.
SCRIPT = """
local paths = %(paths)s
local method = %(method)s
local body = %(body)s
local n = 0
request = function()
  n = n %% #paths + 1
  if body ~= nil then
    return wrk.format(method, paths[n], {["Content-Type"] = "application/json"}, body)
  end
  return wrk.format(method, paths[n])
end
"""

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass
class Load:
    rate: float  # requests/s
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx/3xx answers, socket errors and timeouts


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid Lua string literal for ASCII text


def run(
    url: str,
    paths: list[str],
    *,
    connections: int,
    seconds: float,
    method: str = "GET",
    body: str | None = None,
    threads: int = 1,
) -> Load:
    """``wrk -t THREADS -c CONNECTIONS -d SECONDS --latency`` over ``paths`` of ``url``."""
    script = SCRIPT % {
        "paths": "{" + ", ".join(_lua_string(p) for p in paths) + "}",
        "method": _lua_string(method),
        "body": _lua_string(body) if body is not None else "nil",
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
    try:
        output = subprocess.run(
            [
                WRK,
                f"-t{threads}",
                f"-c{connections}",
                f"-d{seconds:g}s",
                "--timeout",
                "10s",
                "--latency",
                "-s",
                file.name,
                url,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        Path(file.name).unlink()
    return parse(output)


def parse(output: str) -> Load:
    rate = float(_search(r"Requests/sec:\s+([\d.]+)", output))
    requests = int(_search(r"(\d+) requests in", output))
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        errors += int(match.group(1))
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        errors += sum(int(g) for g in match.groups())
    return Load(rate, _latency(output, "50"), _latency(output, "99"), requests, errors)


def _latency(output: str, percent: str) -> float:
    value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M).groups()  # type: ignore[union-attr]
    return float(value) * _UNITS[unit]


def _search(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{text}")
    return match.group(1)
