"""The benchmark tool works end to end: a tiny run of every scenario against a live server it starts itself.

This checks the instrument, not performance: bench/README.md has the figures.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests import ROOT

DELIVERY_SCENARIOS = {"rate-3", "burst-3", "rooms-2x2", "rooms-2x2-hold"}


def _urls() -> tuple[str, str, str]:
    """PostgreSQL server URL, a database of our own on it, and the Redis URL, from the test environment."""
    database_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    if not database_url.startswith("postgres"):
        pytest.fail("the bench smoke test needs PostgreSQL: set DATABASE_URL (make test does)")
    redis_url = os.environ.get("REDIS_URL") or pytest.fail("the bench smoke test needs Redis: set REDIS_URL")
    postgres_url = urlunsplit(urlsplit(database_url)._replace(path="/postgres"))
    # Apart from pytest-django's test database and from other side-by-side runs.
    database = f"{os.environ.get('TEST_DATABASE_NAME') or 'test'}_bench_smoke"
    return postgres_url, database, redis_url


@pytest.mark.live
@pytest.mark.timeout(240)
def test_tiny_bench_run_writes_complete_result_without_losing_messages(tmp_path: Path) -> None:
    postgres_url, database, redis_url = _urls()
    command = [
        # The reconnect storm has its own smoke test (tests/live/test_bench_raw_smoke.py).
        sys.executable, "-m", "bench", "--smoke", "--configs", "daphne-pubsub-1,stock-pubsub-1", "--scenarios", "idle,room,rooms,http",
        "--postgres-url", postgres_url, "--database", database, "--redis-url", redis_url, "--out", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=220)
    assert done.returncode == 0, done.stderr[-3000:]

    (result_file,) = tmp_path.glob("*.json")
    result = json.loads(result_file.read_text())
    assert {"meta", "configs", "targets"} <= result.keys()
    assert {"run_id", "command", "host", "plan", "duration_s"} <= result["meta"].keys()
    config, stock = result["configs"]
    assert config["name"] == "daphne-pubsub-1" and "error" not in config
    scenarios = {s["name"]: s for s in config["scenarios"]}
    assert set(scenarios) == {"idle-5", "http-8"} | DELIVERY_SCENARIOS, [s.get("error") for s in scenarios.values()]

    idle = scenarios["idle-5"]
    assert idle["connect"]["ok"] == 5 and idle["connect"]["failed"] == 0
    assert {"seconds", "server_rss_per_connection_kb"} <= idle["connect"].keys()
    assert "settle_s" in idle["leave"]

    for name in DELIVERY_SCENARIOS:
        s = scenarios[name]
        assert s["messages_acked"] > 0, (name, s["response_statuses"])
        assert s["delivered_frames"] == s["expected_frames"] > 0, name
        assert (s["lost"], s["duplicates"], s["out_of_order"]) == (0, 0, 0), name
        assert s["drain_ended"] == ["complete"], name
        assert s["latency_ms"]["count"] == s["delivered_frames"], name
        assert 0 <= s["latency_ms"]["p50"] <= s["latency_ms"]["p99"] <= s["latency_ms"]["max"], name
        assert s["frames_per_s"] > 0, name
        # None when the server's CPU over so tiny a phase stayed under one clock tick (10 ms): no rate to give.
        assert s["frames_per_server_cpu_s"] is None or s["frames_per_server_cpu_s"] > 0, name
        assert s["latency_cdf"]["ms"], name

    http = scenarios["http-8"]
    assert http["response_statuses"] == {"201": 8} and http["messages_acked"] == 8
    assert http["messages_per_s"] > 0 and http["server_cpu_s"] >= 0
    assert "http_posts_per_s" in config["figures"]

    assert any(check["target"].startswith("zero lost") and check["ok"] for check in result["targets"][config["name"]])
    # The stock-Channels baseline (bench/stock.py) speaks enough of the contract to be measured alongside.
    assert stock["name"] == "stock-pubsub-1" and "error" not in stock
    assert "http-8" not in {s["name"] for s in stock["scenarios"]}  # no HTTP API to post to
    for s in stock["scenarios"]:
        if s["name"] in DELIVERY_SCENARIOS:
            assert s["delivered_frames"] == s["expected_frames"] > 0 and s["lost"] == 0, s["name"]
    assert list(tmp_path.glob("*-latency-cdf.png")) and list(tmp_path.glob("*-throughput.png"))
