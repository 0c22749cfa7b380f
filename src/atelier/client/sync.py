"""A small synchronous client over httpx, used by the CLI and by scripts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Self

import httpx
from httpx_sse import connect_sse

# The typed SDK is atelier.client.Atelier; this dict client raises its ApiError (under
# the name the CLI's older commands catch).
from atelier.client.errors import ApiError as AtelierError


class AtelierClient:
    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"title": response.reason_phrase, "detail": response.text[:500]}
            raise AtelierError(response.status_code, problem)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def submit(
        self,
        graph: dict[str, Any] | None = None,
        *,
        workflow: str | None = None,
        params: dict[str, Any] | None = None,
        preset: str | None = None,
        priority: int = 0,
        metadata: dict[str, Any] | None = None,
        labels: dict[str, str] | None = None,
        wait: float | None = None,
    ) -> dict[str, Any]:
        """A raw graph, or a workflow template by name with its params (and preset)."""
        body: dict[str, Any] = {
            "priority": priority,
            "metadata": metadata or {},
            "labels": labels or {},
        }
        if workflow is not None:
            body.update(workflow=workflow, params=params or {})
            if preset is not None:
                body["preset"] = preset
        else:
            body["graph"] = graph
        headers = {"Prefer": f"wait={wait:g}"} if wait else {}
        timeout = (wait or 0) + 30.0
        result: dict[str, Any] = self._call(
            "POST", "/api/v1/jobs", json=body, headers=headers, timeout=timeout
        )
        return result

    def job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/api/v1/jobs/{job_id}")
        return result

    def jobs(
        self, *, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        result: dict[str, Any] = self._call("GET", "/api/v1/jobs", params=params)
        return result

    def cancel(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/api/v1/jobs/{job_id}/cancel")
        return result

    def retry(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/api/v1/jobs/{job_id}/retry")
        return result

    def delete(self, job_id: str) -> None:
        self._call("DELETE", f"/api/v1/jobs/{job_id}")

    def backends(self) -> list[dict[str, Any]]:
        result: dict[str, Any] = self._call("GET", "/api/v1/backends")
        return list(result["items"])

    def info(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/")
        return result

    def download(self, url_or_id: str) -> bytes:
        path = url_or_id if "/" in url_or_id else f"/api/v1/artifacts/{url_or_id}"
        response = self._http.get(path)
        if response.status_code >= 400:
            raise AtelierError(response.status_code, {"detail": response.text[:500]})
        return response.content

    def events(self, job_id: str, *, after: int = 0) -> Iterator[dict[str, Any]]:
        """The job's events as they happen (replayed from ``after``); ends with the job."""
        with connect_sse(
            self._http,
            "GET",
            f"/api/v1/jobs/{job_id}/events",
            params={"after": after},
            timeout=httpx.Timeout(30.0, read=None),
        ) as source:
            if source.response.status_code >= 400:
                source.response.read()
                raise AtelierError(source.response.status_code, source.response.json())
            for sse in source.iter_sse():
                if sse.data:
                    yield json.loads(sse.data)
