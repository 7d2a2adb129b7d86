"""Structured logs: JSON lines under LOG_FORMAT=json, and no credential in any record."""

import json
import logging
import os
import subprocess
import sys

import pytest

from chat.ops.logging import REDACTED, JsonFormatter, ScrubCredentialsFilter, access_log, log_event, scrub
from tests import ROOT

KEY = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"


@pytest.mark.parametrize(
    "raw",
    [
        f"GET /ws/chat/room/?token={KEY} 101",
        f"GET /api/rooms/?page=2&token={KEY}&x=1",
        f"Authorization: Token {KEY}",
        f"{{'HTTP_AUTHORIZATION': 'Token {KEY}', 'PATH_INFO': '/api/'}}",
        f"[(b'host', b'x'), (b'authorization', b'Token {KEY}')]",
        f"auth failed for Token {KEY}",
        f'{{"token": "{KEY}"}}',
        f"Cookie: csrftoken={KEY}; sessionid={KEY}",
        f"password={KEY}&username=alice",
        f"Authorization: Bearer {KEY}",
    ],
)
def test_scrub_removes_credentials(raw: str) -> None:
    cleaned = scrub(raw)
    assert KEY not in cleaned
    assert REDACTED in cleaned


def test_scrub_keeps_harmless_text() -> None:
    line = "GET /api/rooms/12/messages/?after_seq=40&limit=50 200"
    assert scrub(line) == line


def record_through_filter(logger_name: str, msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.getLogger(logger_name).makeRecord(logger_name, logging.INFO, __file__, 1, msg, args, None, extra=extra)
    assert ScrubCredentialsFilter().filter(record)
    return record


def test_filter_scrubs_args_extras_and_tracebacks() -> None:
    record = record_through_filter("daphne.http_protocol", "request %s failed", f"/x?token={KEY}", path=f"/x?token={KEY}")
    assert KEY not in record.getMessage() and KEY not in record.path  # type: ignore[attr-defined]
    try:
        raise ValueError(f"bad header Authorization: Token {KEY}")
    except ValueError:
        record = logging.getLogger("x").makeRecord("x", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    ScrubCredentialsFilter().filter(record)
    formatted = JsonFormatter().format(record)
    assert KEY not in formatted and "ValueError" in json.loads(formatted)["exception"]


def test_log_event_json_fields_and_forbidden_fields(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("chat.test")
    with caplog.at_level(logging.INFO, logger="chat.test"):
        log_event(
            logger,
            "ws.disconnect",
            user_id=7,
            close_code=1000,
            duration_ms=812.5,
            request_id="r-1",
            text="a private message",
            password="hunter2-secret",
        )
    record = caplog.records[-1]
    ScrubCredentialsFilter().filter(record)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["event"] == "ws.disconnect"
    assert entry["level"] == "INFO" and entry["logger"] == "chat.test"
    assert {"timestamp", "message", "pid"} <= set(entry)
    assert (entry["user_id"], entry["close_code"], entry["duration_ms"], entry["request_id"]) == (7, 1000, 812.5, "r-1")
    assert entry["text"] == REDACTED and entry["password"] == REDACTED
    assert "a private message" not in json.dumps(entry) and "hunter2" not in json.dumps(entry)


def test_daphne_access_log_is_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="daphne.access"):
        access_log(
            "http",
            "complete",
            {
                "path": f"/api/rooms/?token={KEY}",
                "status": 200,
                "method": "GET",
                "client": "127.0.0.1:5000",
                "time_taken": 0.0123,
                "size": 10,
            },
        )
        access_log("websocket", "connected", {"path": "/ws/chat/room/", "client": "127.0.0.1:5001"})
    http, ws = caplog.records[-2:]
    assert http.event == "http.request" and http.status == 200 and http.duration_ms == 12.3  # type: ignore[attr-defined]
    assert KEY not in http.getMessage() and KEY not in http.path  # type: ignore[attr-defined]
    assert ws.event == "ws.connected"  # type: ignore[attr-defined]


def test_events_below_the_level_cost_no_formatting(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """At LOG_LEVEL=WARNING (the bench's, a quiet production's) every handshake's INFO lines are skipped before any work."""

    def no_scrubbing(text: str) -> str:
        raise AssertionError("scrubbed a line nobody logs")

    monkeypatch.setattr("chat.ops.logging.scrub", no_scrubbing)
    with caplog.at_level(logging.WARNING):
        access_log("websocket", "connected", {"path": f"/ws/chat/room/?token={KEY}", "client": "127.0.0.1:5001"})
        log_event(logging.getLogger("chat.ws.consumer"), "ws.connect", user_id=1)
    assert caplog.records == []


def test_configured_json_logging_end_to_end() -> None:
    """With LOG_FORMAT=json, Django's own loggers and ours all print scrubbed JSON lines."""
    code = f"""
import logging
from django.test import Client
from chat.ops.logging import log_event
logging.getLogger("django.request").warning("Forbidden: /api/?token={KEY}")
log_event(logging.getLogger("chat.ws.consumer"), "ws.connect", user_id=1, authorization="Token {KEY}")
logging.getLogger("chat").error("with header %s", {{"HTTP_AUTHORIZATION": "Token {KEY}"}})
Client().get("/api/rooms/?token={KEY}", HTTP_AUTHORIZATION="Token {KEY}")
"""
    env = {**os.environ, "LOG_FORMAT": "json", "LOG_LEVEL": "INFO", "DEBUG": "true"}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {r["logger"] for r in records} >= {"django.request", "chat.ws.consumer", "chat"}
    assert any(r.get("event") == "ws.connect" and r.get("user_id") == 1 for r in records)
    assert KEY not in result.stderr and KEY not in result.stdout
