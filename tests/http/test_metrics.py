"""GET /metrics: who may scrape it, and the counters the HTTP API moves."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from chat.models import Room, User
from chat.ops import metrics
from tests import ROOT
from tests.conftest import client_for

METRIC_NAMES = {
    "chat_ws_connections_open",
    "chat_ws_connections",
    "chat_ws_actions",
    "chat_messages_created",
    "chat_events_fanned_out",
    "chat_fanout_delay_seconds",
    "chat_channel_layer_errors",
    "chat_rate_limited",
    "chat_slow_consumer_disconnects",
}


def scrape(client: Client | None = None, **headers: str) -> dict[str, float]:
    response = (client or Client()).get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {
        sample.name + repr(sorted(sample.labels.items())) * bool(sample.labels): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_every_metric_is_exposed_with_help() -> None:
    text = Client().get("/metrics").content.decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert METRIC_NAMES <= set(families), METRIC_NAMES - set(families)
    for name in METRIC_NAMES:
        assert families[name].documentation, name


@override_settings(DEBUG=False, METRICS_TOKEN="", METRICS_ALLOW_LOCALHOST=True)
def test_loopback_scrape_allowed_but_not_through_a_proxy() -> None:
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="::1").get("/metrics").status_code == 200
    proxied = Client(REMOTE_ADDR="127.0.0.1").get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
    assert proxied.status_code == 403
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 403


@override_settings(DEBUG=False, METRICS_TOKEN="s3cret-scrape-token", METRICS_ALLOW_LOCALHOST=False)
def test_bearer_token_scrape() -> None:
    remote = Client(REMOTE_ADDR="10.1.2.3")
    assert remote.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape-token"}).status_code == 200
    assert remote.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert remote.get("/metrics").status_code == 403
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 403  # localhost rule switched off


@override_settings(DEBUG=True)
def test_debug_allows_anyone() -> None:
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200


@override_settings(DEBUG=True)
def test_post_is_not_allowed() -> None:
    assert Client().post("/metrics").status_code == 405


@pytest.mark.django_db
def test_messages_created_counts_committed_new_messages_only(
    user: User, room: Room, django_capture_on_commit_callbacks: pytest.FixtureRequest
) -> None:
    api = client_for(user)
    before = scrape().get("chat_messages_created_total", 0)
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        for n in range(3):
            assert api.post(f"/api/rooms/{room.pk}/messages/", {"text": f"m{n}", "client_id": f"c{n}"}, format="json").status_code == 201
        retry = api.post(f"/api/rooms/{room.pk}/messages/", {"text": "m0", "client_id": "c0"}, format="json")
        assert retry.status_code == 200
    assert scrape()["chat_messages_created_total"] - before == 3


@pytest.mark.django_db
def test_rolled_back_message_is_not_counted(user: User, room: Room, django_capture_on_commit_callbacks: pytest.FixtureRequest) -> None:
    from django.db import transaction

    from chat.core import services

    before = scrape().get("chat_messages_created_total", 0)
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        with pytest.raises(RuntimeError), transaction.atomic():
            services.message_store(room_id=room.pk, author=user, text="never")
            raise RuntimeError("rollback")
    assert scrape().get("chat_messages_created_total", 0) == before


@pytest.mark.django_db
@override_settings(CHAT_MESSAGE_RATE_LIMIT=2)
def test_rate_limit_rejections_are_counted(user: User, room: Room) -> None:
    api = client_for(user)
    key = "chat_rate_limited_total" + repr([("limit", "message")])
    before = scrape().get(key, 0)
    statuses = [api.post(f"/api/rooms/{room.pk}/messages/", {"text": "x"}, format="json").status_code for _ in range(4)]
    assert statuses == [201, 201, 429, 429]
    assert scrape()[key] - before == 2


def test_helpers_keep_labels_bounded() -> None:
    before = scrape()
    metrics.connection_accepted()
    metrics.connection_accepted()
    metrics.connection_closed(4999)
    metrics.connection_refused(None)
    metrics.action_handled("create_message", 201)
    metrics.action_handled(None, 405)  # the consumer passes None for names it does not know
    metrics.event_sent("create", committed_at=__import__("time").time() - 0.02)
    metrics.event_sent("bogus")
    metrics.channel_layer_error("group_send")
    metrics.slow_consumer_disconnected()
    after = scrape()

    def delta(key: str) -> float:
        return after.get(key, 0) - before.get(key, 0)

    assert delta("chat_ws_connections_open") == 1
    assert delta("chat_ws_connections_total" + repr([("close_code", "none"), ("outcome", "accepted")])) == 2
    assert delta("chat_ws_connections_total" + repr([("close_code", "4xxx"), ("outcome", "closed")])) == 1
    assert delta("chat_ws_connections_total" + repr([("close_code", "none"), ("outcome", "refused")])) == 1
    assert delta("chat_ws_actions_total" + repr([("action", "create_message"), ("status", "201")])) == 1
    assert delta("chat_ws_actions_total" + repr([("action", "other"), ("status", "405")])) == 1
    assert delta("chat_events_fanned_out_total" + repr([("event", "create")])) == 1
    assert delta("chat_events_fanned_out_total" + repr([("event", "other")])) == 1
    assert delta("chat_fanout_delay_seconds_count" + repr([("event", "create")])) == 1
    assert delta("chat_fanout_delay_seconds_bucket" + repr([("event", "create"), ("le", "0.01")])) == 0
    assert delta("chat_fanout_delay_seconds_bucket" + repr([("event", "create"), ("le", "0.025")])) == 1
    assert delta("chat_channel_layer_errors_total" + repr([("operation", "group_send")])) == 1
    assert delta("chat_slow_consumer_disconnects_total") == 1
    metrics.connection_closed(1000)


def test_close_code_classes() -> None:
    assert metrics.close_code_class(None) == "none"
    assert metrics.close_code_class(1000) == "1000"
    assert metrics.close_code_class(4401) == "4401"
    assert metrics.close_code_class(1013) == "1xxx"
    assert metrics.close_code_class(3123) == "3xxx"
    assert metrics.close_code_class(99999) == "invalid"


def test_multiprocess_totals_and_dead_process_gauges(tmp_path: Path) -> None:
    """Counters of several processes add up; a dead process's open connections stop counting."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "mysite.settings"}
    worker = "import os; from chat.ops import metrics; metrics.message_created(); metrics.connection_accepted(); print(os.getpid())"
    pids = [
        subprocess.run([sys.executable, "-c", worker], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout.strip()
        for _ in range(2)
    ]
    reader = "import sys; from chat.ops import metrics; sys.stdout.write(metrics.render().decode())"

    def read() -> dict[str, float]:
        out = subprocess.run([sys.executable, "-c", reader], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
        return {s.name: s.value for f in text_string_to_metric_families(out) for s in f.samples}

    totals = read()
    assert totals["chat_messages_created_total"] == 2
    assert totals["chat_ws_connections_open"] == 2
    marker = f"from chat.ops import metrics; metrics.mark_process_dead({pids[0]})"
    subprocess.run([sys.executable, "-c", marker], cwd=ROOT, env=env, check=True)
    totals = read()
    assert totals["chat_ws_connections_open"] == 1
    assert totals["chat_messages_created_total"] == 2
