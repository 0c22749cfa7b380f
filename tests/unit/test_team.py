"""The pure parts of keys, limits and webhooks: scope rules, signing, caps, stats math."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from atelier.api.artifacts import safe_filename
from atelier.auth.caller import ANONYMOUS, Caller, enqueues, required_scope
from atelier.auth.idempotency import fingerprint
from atelier.auth.signing import UrlSigner, load_secret
from atelier.dispatch.policy import Candidate, Policy, Slot, assign
from atelier.errors import RateLimited, SignatureInvalid, Unauthorized
from atelier.jobs.stats import busy_seconds, percentile


def test_scope_rules() -> None:
    assert required_scope("GET", "/api/v1/jobs") == "read"
    assert required_scope("POST", "/api/v1/jobs") == "submit"
    assert required_scope("DELETE", "/api/v1/jobs/x") == "submit"
    assert required_scope("GET", "/api/v1/admin/stats") == "admin"
    assert required_scope("POST", "/api/v1/workflows/txt2img") == "admin"
    assert required_scope("PUT", "/api/v1/workflows/txt2img") == "admin"
    assert required_scope("POST", "/api/v1/workflows/txt2img/jobs") == "submit"
    assert required_scope("GET", "/api/v1/workflows/txt2img") == "read"
    assert enqueues("POST", "/api/v1/jobs/abc/retry") and not enqueues("GET", "/api/v1/jobs")
    reader = Caller(owner="a", scopes=frozenset({"read"}))
    writer = Caller(owner="a", scopes=frozenset({"submit"}))
    assert reader.allows("read") and not reader.allows("submit")
    assert writer.allows("read") and writer.allows("submit") and not writer.allows("admin")
    assert writer.visible_owner == "a" and ANONYMOUS.visible_owner is None


def test_signed_links(tmp_path: Path) -> None:
    secret = load_secret(None, tmp_path)
    assert load_secret(None, tmp_path) == secret  # made once, then kept
    assert (tmp_path / "signing.key").stat().st_mode & 0o777 == 0o600
    signer = UrlSigner(secret, ttl=60)
    url = signer.url("http://h", "abc")
    query = dict(part.split("=") for part in url.split("?")[1].split("&"))
    signer.verify("abc", query["expires"], query["sig"])
    assert signer.url("http://h", "abc") == url  # stable within the hour: cacheable
    with pytest.raises(SignatureInvalid):
        signer.verify("abd", query["expires"], query["sig"])
    with pytest.raises(SignatureInvalid):
        UrlSigner(b"other", ttl=60).verify("abc", query["expires"], query["sig"])
    old = 1000
    with pytest.raises(SignatureInvalid, match="expired"):
        signer.verify("abc", str(old), signer.signature("abc", old))


def test_problem_headers() -> None:
    assert Unauthorized().headers["WWW-Authenticate"].startswith("Bearer")
    limited = RateLimited("slow down", limit="requests_per_minute", retry_after=0)
    assert limited.headers == {"Retry-After": "1"} and limited.status == 429
    assert limited.problem()["limit"] == "requests_per_minute"


def test_fingerprint_ignores_key_order() -> None:
    assert fingerprint("r", {"a": 1, "b": [1, 2]}) == fingerprint("r", {"b": [1, 2], "a": 1})
    assert fingerprint("r", {"a": 1}) != fingerprint("other", {"a": 1})


def test_safe_filenames() -> None:
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename('a"b\r\nX-Evil: 1.png') == "a_b_X-Evil: 1.png"
    assert safe_filename("C:\\x\\y.png") == "y.png"
    assert safe_filename("..") == "artifact"


def test_per_owner_caps_in_the_scheduler() -> None:
    jobs = [Candidate(f"{o}{i}", frozenset(), owner=o) for o in ("a", "b") for i in range(3)]
    slots = [Slot("gpu", 6, None)]
    pairs = assign(jobs, slots, Policy(owner_cap=0, owner_caps={"a": 1}))
    assert [j for j, _ in pairs if j.startswith("a")] == ["a0"]
    assert len([j for j, _ in pairs if j.startswith("b")]) == 3
    capped = assign(jobs, slots, Policy(owner_cap=2, owner_caps={"a": 1}, in_flight={"a": 1}))
    assert [j for j, _ in capped] == ["b0", "b1"]


def test_stats_math() -> None:
    assert percentile([], 0.5) is None
    assert percentile([1, 2, 3, 4], 0.5) == 2 and percentile([1, 2, 3, 4], 0.95) == 4
    t = datetime(2026, 1, 1, tzinfo=UTC)
    s = timedelta(seconds=1)
    assert busy_seconds([(t, t + 10 * s), (t + 5 * s, t + 12 * s), (t + 20 * s, t + 21 * s)]) == 13
