"""Signed webhook deliveries to a real receiver on loopback: retried, recorded, durable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from tests.graphs import image_graph, sampler_graph
from tests.helpers import eventually
from tests.team import Receiver, auth, make_key

FAST_HOOKS = {
    "url_allowlist": ["127.0.0.1"],
    "webhook_retry_base": 0.05,
    "webhook_retry_max": 0.2,
    "webhook_progress_interval": 0.5,
}


def verified(secret: str, delivery: dict[str, Any]) -> dict[str, Any]:
    """The payload, if and only if its Standard Webhooks signature verifies."""
    payload: dict[str, Any] = Webhook(secret).verify(delivery["body"], delivery["headers"])
    return payload


async def test_job_webhook_signed_and_filtered(
    server_factory: Any, database_url: str, fake: Any
) -> None:
    fake.set_timing(step_time=0.02)
    receiver = await Receiver().start()
    try:
        server = await server_factory(database_url, [fake.url], **FAST_HOOKS)
        async with server.client() as client:
            secret = (await client.get("/api/v1/webhooks/secret")).json()["secret"]
            assert secret.startswith("whsec_")
            job = (
                await client.post(
                    "/api/v1/jobs",
                    json={
                        "graph": sampler_graph(steps=60),
                        "webhook": {
                            "url": receiver.url,
                            "events": ["running", "progress", "completed"],
                        },
                    },
                )
            ).json()
            await eventually(lambda: _types(receiver, secret, "job.completed"), timeout=30)
            payloads = [verified(secret, d) for d in receiver.received]
            kinds = [p["type"] for p in payloads]
            assert kinds[0] == "job.running" and kinds[-1] == "job.completed"
            assert "job.queued" not in kinds  # filtered out
            progress = kinds.count("job.progress")
            assert 1 <= progress < 20, kinds  # thinned: 60 steps over ~1.5 s
            final = payloads[-1]["data"]
            assert final["id"] == job["id"] and final["status"] == "completed"
            (output,) = final["outputs"]
            assert "sig=" in output["url"]
            headers = receiver.received[-1]["headers"]
            assert headers["webhook-id"] and headers["webhook-signature"].startswith("v1,")
            # A tampered body does not verify.
            forged = dict(
                receiver.received[-1],
                body=receiver.received[-1]["body"].replace("completed", "failed"),
            )
            try:
                verified(secret, forged)
            except Exception as exc:
                assert type(exc).__name__ == "WebhookVerificationError"
            else:
                raise AssertionError("a forged body verified")

            deliveries = (
                await client.get(f"/api/v1/webhooks/deliveries?job_id={job['id']}")
            ).json()
            assert all(d["status"] == "delivered" for d in deliveries["items"])
            assert {d["attempts"] for d in deliveries["items"]} == {1}
    finally:
        await receiver.stop()


async def _types(receiver: Receiver, secret: str, wanted: str) -> bool:
    return any(verified(secret, d)["type"] == wanted for d in receiver.received)


async def test_subscription_retries_until_the_receiver_recovers(
    server_factory: Any, fake: Any, tmp_path: Path
) -> None:
    receiver = await Receiver(fail_first=3).start()
    try:
        server = await server_factory(
            f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url], **FAST_HOOKS
        )
        async with server.client() as client:
            admin = await make_key(client, "root", "admin")
            alice = await make_key(client, "alice", "submit", admin_key=admin)
            bob = await make_key(client, "bob", "submit", admin_key=admin)
            created = await client.post(
                "/api/v1/webhooks",
                json={"url": receiver.url, "events": ["completed"]},
                headers=auth(alice),
            )
            assert created.status_code == 201, created.text
            hook = created.json()
            secret = hook["secret"]
            listed = (await client.get("/api/v1/webhooks", headers=auth(alice))).json()["items"]
            assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]
            assert (await client.get("/api/v1/webhooks", headers=auth(bob))).json()["items"] == []
            gone = await client.get(f"/api/v1/webhooks/{hook['id']}", headers=auth(bob))
            assert gone.status_code == 404

            # Bob's job is not Alice's business; Alice's job is.
            await client.post(
                "/api/v1/jobs",
                json={"graph": image_graph(color=1)},
                headers={**auth(bob), "Prefer": "wait=20"},
            )
            job = (
                await client.post(
                    "/api/v1/jobs",
                    json={"graph": image_graph()},
                    headers={**auth(alice), "Prefer": "wait=20"},
                )
            ).json()
            await eventually(lambda: _delivered(client, alice), timeout=30)
            (payload,) = [verified(secret, d) for d in receiver.received]
            assert payload["type"] == "job.completed" and payload["data"]["id"] == job["id"]
            assert receiver.answered == [500, 500, 500, 200]
            (delivery,) = (
                await client.get("/api/v1/webhooks/deliveries", headers=auth(alice))
            ).json()["items"]
            assert delivery["attempts"] == 4
            assert [a["status_code"] for a in delivery["history"]] == [500, 500, 500, 200]
            assert delivery["next_attempt_at"] is None
            assert (await client.get("/api/v1/webhooks/deliveries", headers=auth(bob))).json()[
                "items"
            ] == []

            # Redeliver: the same webhook-id again.
            not_bobs = await client.post(
                f"/api/v1/webhooks/deliveries/{delivery['id']}/redeliver", headers=auth(bob)
            )
            assert not_bobs.status_code == 404
            again = await client.post(
                f"/api/v1/webhooks/deliveries/{delivery['id']}/redeliver", headers=auth(alice)
            )
            assert again.status_code == 200
            await eventually(lambda: _count(receiver, 2), timeout=10)
            ids = {d["headers"]["webhook-id"] for d in receiver.received}
            assert ids == {delivery["id"]}

            deleted = await client.delete(f"/api/v1/webhooks/{hook['id']}", headers=auth(alice))
            assert deleted.status_code == 204
    finally:
        await receiver.stop()


async def _delivered(client: httpx.AsyncClient, key: str) -> bool:
    items = (await client.get("/api/v1/webhooks/deliveries", headers=auth(key))).json()["items"]
    return bool(items) and all(d["status"] == "delivered" for d in items)


async def _count(receiver: Receiver, n: int) -> bool:
    return len(receiver.received) >= n


async def test_deliveries_survive_a_restart(
    server_factory: Any, database_url: str, fake: Any
) -> None:
    receiver = await Receiver(status=503).start()
    try:
        settings = {**FAST_HOOKS, "webhook_retry_base": 0.2, "webhook_retry_max": 0.5}
        first = await server_factory(database_url, [fake.url], **settings)
        async with first.client() as client:
            created = await client.post(
                "/api/v1/webhooks", json={"url": receiver.url, "events": ["completed"]}
            )
            secret = created.json()["secret"]
            job = (
                await client.post(
                    "/api/v1/jobs", json={"graph": image_graph()}, headers={"Prefer": "wait=20"}
                )
            ).json()
            await eventually(lambda: _count_answers(receiver, 2), timeout=20)
        await first.stop()
        assert receiver.received == []

        receiver.status = 200
        second = await server_factory(database_url, [fake.url], **settings)
        async with second.client() as client:
            await eventually(lambda: _count(receiver, 1), timeout=20)
            (payload,) = [verified(secret, d) for d in receiver.received]
            assert payload["data"]["id"] == job["id"]
            (delivery,) = (await client.get("/api/v1/webhooks/deliveries")).json()["items"]
            assert delivery["status"] == "delivered" and delivery["attempts"] >= 3
    finally:
        await receiver.stop()


async def _count_answers(receiver: Receiver, n: int) -> bool:
    return len(receiver.answered) >= n


async def test_private_targets_are_refused(server_factory: Any, fake: Any, tmp_path: Path) -> None:
    server = await server_factory(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", [fake.url])
    async with server.client() as client:
        for url in ("http://127.0.0.1:9/hook", "http://169.254.169.254/latest", "http://10.1.2.3/"):
            refused = await client.post("/api/v1/webhooks", json={"url": url})
            assert refused.status_code == 400, refused.text
            assert refused.json()["type"].endswith("/url-not-allowed")
            on_job = await client.post(
                "/api/v1/jobs", json={"graph": image_graph(), "webhook": {"url": url}}
            )
            assert on_job.status_code == 400
            assert on_job.json()["errors"][0]["field"] == "webhook.url"
        bad_event = await client.post(
            "/api/v1/webhooks", json={"url": "https://example.com/x", "events": ["exploded"]}
        )
        assert bad_event.status_code == 422
        header_injection = await client.post(
            "/api/v1/webhooks", json={"url": "https://example.com/x\r\nX-Evil: 1"}
        )
        assert header_injection.status_code == 422
        assert json.dumps((await client.get("/api/v1/jobs")).json()["items"]) == "[]"
