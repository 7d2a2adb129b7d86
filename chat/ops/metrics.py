"""Prometheus metrics for the chat and the GET /metrics endpoint that exposes them.

Multiprocess-safe: when PROMETHEUS_MULTIPROC_DIR is set (before this module is
imported), every process writes its samples to files in that directory and
/metrics sums them, so any one process reports the whole deployment. The
directory must be shared by all processes of one deployment and wiped when the
deployment starts. Without it, the process's own in-memory registry is served,
so `make run` just works.

The consumer and services call the small functions below, not the metric objects,
so label values stay few and known (a client cannot mint new time series).
"""

import hmac
import ipaddress
import os
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from chat.events.groups import PUSH_ACTIONS

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

# Label values are limited to known sets; anything else is reported as "other". Action
# labels are the consumer's available_actions (ProtocolConsumer.reply passes None for any
# other name); event labels are the push actions of chat.events.groups.
EVENTS = PUSH_ACTIONS
# Close codes the server itself uses or that clients commonly send; others are grouped by class.
KNOWN_CLOSE_CODES = frozenset({1000, 1001, 1003, 1006, 1008, 1009, 1011, 1012, 4008, 4401, 4403, 4429, 4503})
# The limits of api_docs/PROTOCOL.md §3 (flood limits and version 2 caps) that count their refusals.
LIMITS = frozenset(
    {
        "message",
        "room_create",
        "typing",
        "auth",
        "subscriptions",
        "joined_rooms",
        "connections_per_user",
        "inbound_frames",
        "input_bytes",
    }
)
CHANNEL_LAYER_OPERATIONS = frozenset({"send", "group_send", "group_add", "group_discard", "receive"})

# Commit-to-send delays: a healthy fan-out is a few ms; seconds mean Redis or a consumer is struggling.
FANOUT_DELAY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

CONNECTIONS_OPEN = Gauge(
    "chat_ws_connections_open",
    "WebSocket connections currently open (summed over live processes).",
    multiprocess_mode="livesum",
)
CONNECTIONS = Counter(
    "chat_ws_connections",
    "WebSocket handshakes and closes by outcome (accepted, refused, closed) and close code class.",
    ["outcome", "close_code"],
)
ACTIONS_HANDLED = Counter(
    "chat_ws_actions",
    "WebSocket requests answered, by action name and response status.",
    ["action", "status"],
)
MESSAGES_CREATED = Counter(
    "chat_messages_created",
    "Messages stored and committed (over HTTP or WebSocket; retries with a known client_id excluded).",
)
EVENTS_FANNED_OUT = Counter(
    "chat_events_fanned_out",
    "Events pushed to WebSocket clients, by event kind.",
    ["event"],
)
FANOUT_DELAY = Histogram(
    "chat_fanout_delay_seconds",
    "Seconds from the database commit of a change to its event being sent to a client"
    " (message and room events: once per event and process, when sent to the last of its clients there).",
    ["event"],
    buckets=FANOUT_DELAY_BUCKETS,
)
CHANNEL_LAYER_ERRORS = Counter(
    "chat_channel_layer_errors",
    "Channel layer (Redis) operations that failed, by operation.",
    ["operation"],
)
RATE_LIMITED = Counter(
    "chat_rate_limited",
    "Requests, frames and handshakes refused by a limit of api_docs/PROTOCOL.md §3, by limit.",
    ["limit"],
)
SERVICE_UNAVAILABLE = Counter(
    "chat_service_unavailable",
    "Requests answered 503 because PostgreSQL or Redis did not answer, by transport (http, ws).",
    ["transport"],
)
EVENTS_RECOVERED = Counter(
    "chat_events_recovered",
    "Message events a subscriber got from the database because the channel layer lost or reordered them.",
)
SLOW_CONSUMER_DISCONNECTS = Counter(
    "chat_slow_consumer_disconnects",
    "WebSocket connections closed because the client could not keep up with its events.",
)


def _known(value: str, allowed: frozenset[str]) -> str:
    return value if value in allowed else "other"


def close_code_class(code: int | None) -> str:
    """A low-cardinality label for a close code: the code itself when known, else its class (e.g. "4xxx")."""
    if code is None:
        return "none"
    if code in KNOWN_CLOSE_CODES:
        return str(code)
    return f"{code // 1000}xxx" if 1000 <= code < 5000 else "invalid"


def connection_accepted() -> None:
    """Count an accepted handshake and one more open connection."""
    CONNECTIONS.labels(outcome="accepted", close_code="none").inc()
    CONNECTIONS_OPEN.inc()


def connection_refused(close_code: int | None = None) -> None:
    """Count a handshake refused before accept (close_code None) or closed right after it (e.g. 4401)."""
    CONNECTIONS.labels(outcome="refused", close_code=close_code_class(close_code)).inc()


def connection_closed(close_code: int | None) -> None:
    """Count the close of a connection that connection_accepted() counted."""
    CONNECTIONS.labels(outcome="closed", close_code=close_code_class(close_code)).inc()
    CONNECTIONS_OPEN.dec()


def action_handled(action: str | None, status: int) -> None:
    """Count one WebSocket response by action (one of the consumer's actions, or None for "other") and status."""
    ACTIONS_HANDLED.labels(action=action or "other", status=str(status)).inc()


def message_created() -> None:
    """Count a committed new message (call from transaction.on_commit)."""
    MESSAGES_CREATED.inc()


# Bound once: event_sent runs once per frame per subscriber, the hottest line of the server.
_EVENT_COUNTERS = {kind: EVENTS_FANNED_OUT.labels(event=kind) for kind in (*EVENTS, "other")}
_EVENT_DELAYS = {kind: FANOUT_DELAY.labels(event=kind) for kind in (*EVENTS, "other")}


def event_sent(event: str, committed_at: float | None = None) -> None:
    """Count an event pushed to a client; observe its delay when the commit time (time.time()) is known."""
    kind = _known(event, EVENTS)
    _EVENT_COUNTERS[kind].inc()
    if committed_at is not None:
        _EVENT_DELAYS[kind].observe(max(0.0, time.time() - committed_at))


def events_sent(event: str, count: int, committed_at: float | None = None) -> None:
    """Count one event pushed to `count` clients of this process; observe its delay once, after the last of them."""
    kind = _known(event, EVENTS)
    _EVENT_COUNTERS[kind].inc(count)
    if committed_at is not None:
        _EVENT_DELAYS[kind].observe(max(0.0, time.time() - committed_at))


def channel_layer_error(operation: str) -> None:
    """Count a failed channel layer operation (send, group_send, group_add, group_discard, receive)."""
    CHANNEL_LAYER_ERRORS.labels(operation=_known(operation, CHANNEL_LAYER_OPERATIONS)).inc()


def rate_limited(limit: str) -> None:
    """Count a request, frame or handshake refused by the named limit (see LIMITS)."""
    RATE_LIMITED.labels(limit=_known(limit, LIMITS)).inc()


def service_unavailable(transport: str) -> None:
    """Count a request answered 503 because a backing service is down (transport: http or ws)."""
    SERVICE_UNAVAILABLE.labels(transport=_known(transport, frozenset({"http", "ws"}))).inc()


def events_recovered(count: int) -> None:
    """Count message events sent from the database to fill a gap in a live stream."""
    EVENTS_RECOVERED.inc(count)


def slow_consumer_disconnected() -> None:
    """Count a connection closed because its client fell too far behind."""
    SLOW_CONSUMER_DISCONNECTS.inc()


def mark_process_dead(pid: int | None = None) -> None:
    """Drop a stopped process's live gauges (open connections) from the multiprocess totals."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(pid if pid is not None else os.getpid())


def render() -> bytes:
    """The text exposition of every metric: all processes' when multiprocess, else this process's."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def _is_local_unproxied(request: HttpRequest) -> bool:
    # A reverse proxy on the same host also connects from 127.0.0.1, so a request
    # that carries forwarding headers came from outside and is not trusted.
    if request.META.get("HTTP_X_FORWARDED_FOR") or request.META.get("HTTP_X_REAL_IP") or request.META.get("HTTP_FORWARDED"):
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def metrics_allowed(request: HttpRequest) -> bool:
    """Who may scrape: anyone under DEBUG, a bearer of METRICS_TOKEN, or a direct (unproxied) loopback client."""
    if settings.DEBUG:
        return True
    expected = settings.METRICS_TOKEN
    if expected:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode()):
            return True
    return settings.METRICS_ALLOW_LOCALHOST and _is_local_unproxied(request)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics: the Prometheus text format, for allowed scrapers only."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
    if not metrics_allowed(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)
