"""The local two-process deployment (scripts/run-cluster.sh): shared state, metrics summed over processes, JSON logs."""

import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import requests
import websockets
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql

from tests.live import ScriptCluster, register_user, run_cluster_script, wait_for

pytestmark = pytest.mark.live

RATE_LIMIT = 6


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptCluster]:
    db = settings.DATABASES["default"]
    test_db_name = os.environ.get("TEST_DATABASE_NAME") or f"test_{db['NAME']}"
    server_url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    cluster_db = f"{test_db_name}_cluster"
    # A database of its own, which the script creates and migrates: dropped first, so one left
    # behind by a run of other code (other migrations) cannot make this run's migrate fail.
    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(cluster_db)))
    env = {
        **os.environ,
        "DATABASE_URL": f"{server_url}/{cluster_db}",
        "REDIS_URL": settings.REDIS_URL,
        "REDIS_PREFIX": f"cluster-{uuid.uuid4().hex[:8]}",
        "CHAT_MESSAGE_RATE_LIMIT": str(RATE_LIMIT),
        "CHAT_MESSAGE_RATE_PERIOD": "60",
        "LOG_LEVEL": "INFO",
    }
    for name in ("DEBUG", "SECRET_KEY", "LOG_FORMAT", "PROMETHEUS_MULTIPROC_DIR", "TEST_DATABASE_NAME"):
        env.pop(name, None)
    with run_cluster_script(env, tmp_path_factory.mktemp("cluster")) as instance:
        yield instance


def metrics(url: str, headers: dict[str, str] | None = None) -> dict[str, float]:
    """Every sample of /metrics as {"name{label=value,...}": value}."""
    response = requests.get(f"{url}/metrics", headers=headers or {}, timeout=5)
    assert response.status_code == 200, response.text
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def test_two_processes_share_state_and_metrics_and_keep_tokens_out_of_logs(cluster: ScriptCluster) -> None:
    a, b = cluster.urls
    password = f"pw-{uuid.uuid4().hex}"
    suffix = uuid.uuid4().hex[:8]
    alice = register_user(a, f"alice-{suffix}", password).token
    bob = register_user(b, f"bob-{suffix}", password).token
    as_alice = {"Authorization": f"Token {alice}"}
    as_bob = {"Authorization": f"Token {bob}"}
    before = metrics(a)

    room = requests.post(f"{a}/api/rooms/", json={"name": f"ops-{suffix}"}, headers=as_alice, timeout=5).json()
    assert requests.post(f"{b}/api/rooms/{room['pk']}/join/", headers=as_bob, timeout=5).status_code in (200, 204)

    # Bob listens on process B over WebSocket (token in the query string, as browsers must).
    ws_url = b.replace("http://", "ws://") + f"/ws/chat/room/?token={bob}"
    received: list[dict[str, Any]] = []
    during: dict[str, float] = {}

    async def listen_while_posting() -> None:
        async with websockets.connect(ws_url, open_timeout=10) as ws:
            await ws.send(json.dumps({"action": "subscribe_to_messages_in_room", "pk": room["pk"], "request_id": "s"}))
            while "response_status" not in (reply := json.loads(await asyncio.wait_for(ws.recv(), 10))):
                pass
            assert reply["response_status"] == 200, reply
            # Alice posts on process A (token as a query parameter on one of them).
            for n in range(3):
                url = f"{a}/api/rooms/{room['pk']}/messages/" + (f"?token={alice}" if n == 0 else "")
                response = await asyncio.to_thread(
                    requests.post, url, json={"text": f"hello {n}", "client_id": f"c{n}"}, headers=as_alice, timeout=5
                )
                assert response.status_code == 201, response.text
            while len(received) < 3:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame.get("action") == "create":
                    received.append(frame)
            during.update(await asyncio.to_thread(metrics, a))

    asyncio.run(listen_while_posting())
    assert [frame["data"]["seq"] for frame in received] == [1, 2, 3]

    # WebSocket metrics, written by process B, read from process A.
    def delta(key: str, now: dict[str, float] = during) -> float:
        return now.get(key, 0) - before.get(key, 0)

    assert delta("chat_ws_connections_open") == 1
    assert delta("chat_ws_connections_total{close_code=none,outcome=accepted}") == 1
    assert delta("chat_ws_actions_total{action=subscribe_to_messages_in_room,status=200}") == 1
    assert delta("chat_events_fanned_out_total{event=create}") == 3
    assert delta("chat_fanout_delay_seconds_count{event=create}") == 3
    # Commit to send across two processes and Redis: well under a second here.
    assert delta("chat_fanout_delay_seconds_bucket{event=create,le=1.0}") == 3
    wait_for(lambda: metrics(a).get("chat_ws_connections_open", 0) == before.get("chat_ws_connections_open", 0), timeout=10, what="close")
    closed = [k for k in metrics(b) if k.startswith("chat_ws_connections_total{") and "outcome=closed" in k]
    assert closed, "the close was not counted"

    # A retry (same client_id) on the other process stores nothing and counts nothing.
    retry = requests.post(f"{b}/api/rooms/{room['pk']}/messages/", json={"text": "hello 0", "client_id": "c0"}, headers=as_alice, timeout=5)
    assert retry.status_code == 200, retry.text
    # Bob posts on B until the flood limit answers 429.
    statuses = [
        requests.post(f"{b}/api/rooms/{room['pk']}/messages/", json={"text": "flood"}, headers=as_bob, timeout=5).status_code
        for _ in range(RATE_LIMIT + 2)
    ]
    assert statuses[:RATE_LIMIT] == [201] * RATE_LIMIT and statuses[RATE_LIMIT:] == [429, 429], statuses

    created = 3 + RATE_LIMIT
    # Both processes report the deployment's totals, whichever served the request.
    for url in (a, b):
        after = metrics(url)
        assert after["chat_messages_created_total"] - before.get("chat_messages_created_total", 0) == created
        key = "chat_rate_limited_total{limit=message}"
        assert after[key] - before.get(key, 0) == 2

    # /metrics is not for the outside world: a proxied request is refused in production mode.
    assert requests.get(f"{a}/metrics", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=5).status_code == 403

    # Logs: every line is one JSON object, and neither token appears anywhere.
    wait_for(lambda: any('"ws.disconnect"' in line for line in cluster.log_lines()), timeout=10, what="the disconnect log")
    lines = cluster.log_lines()
    records = [json.loads(line) for line in lines]
    assert all({"timestamp", "level", "logger", "message"} <= set(record) for record in records)
    events = {r.get("event"): r for r in records}
    assert events["ws.connect"]["user_id"] and "ws.disconnect" in events, sorted(map(str, events))
    assert {"close_code", "duration_ms", "user_id"} <= set(events["ws.disconnect"])
    access = [r for r in records if r["logger"] == "daphne.access"]
    assert any(r.get("path", "").startswith("/api/rooms/") and "token=[REDACTED]" in r["path"] for r in access), access
    assert {r["pid"] for r in access} and len({r["pid"] for r in records}) >= 2
    text = "\n".join(lines)
    for secret in (alice, bob, password):
        assert secret not in text
    assert "hello 1" not in text and "flood" not in text  # message texts are not logged either
