"""Structured logging: a JSON-lines formatter, a filter that scrubs credentials, and `log_event`.

settings.LOGGING installs `ScrubCredentialsFilter` on the console handler, so it
sees every record that is printed, whichever logger (Django, daphne, ours) made it.
With LOG_FORMAT=json, `JsonFormatter` prints each record as one JSON object per line.
Daphne's access log does not go through `logging` at all; `mysite.serve` routes it
here through `access_log` so it is scrubbed and formatted like everything else.
"""

import datetime
import json
import logging
import re
import traceback
from typing import Any

REDACTED = "[REDACTED]"

# Credential-bearing names: API tokens, CSRF tokens, session ids, passwords, secrets.
_SECRET_NAME = r"[\w.-]*(?:token|password|passwd|secret|sessionid|api_key|apikey)[\w.-]*"
_SCRUBBERS: list[tuple[re.Pattern[str], str]] = [
    # Authorization header values in any rendering: "Authorization: Token abc",
    # "'HTTP_AUTHORIZATION': 'Token abc'", "(b'authorization', b'Token abc')".
    (
        re.compile(r"""(?i)((?:http_)?authorization['"]?\s*[:=,]\s*b?['"]?)[^'"\r\n]+"""),
        r"\1" + REDACTED,
    ),
    # "Token <key>" / "Bearer <key>" anywhere else (DRF tokens are 40 hex characters).
    (re.compile(r"""(?i)\b(token|bearer)(\s+)[^\s'",;&)\]}]{6,}"""), r"\1\2" + REDACTED),
    # ?token=<key>, &password=..., csrftoken=... in query strings, bodies and cookies.
    (re.compile(rf"""(?i)\b({_SECRET_NAME})=[^&\s'";#]*"""), r"\1=" + REDACTED),
    # "token": "<key>" in JSON or dict reprs.
    (re.compile(rf"""(?i)(['"]{_SECRET_NAME}['"]\s*:\s*b?['"])[^'"]*"""), r"\1" + REDACTED),
]

# Attributes every LogRecord has; anything else on a record is an `extra` field.
_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# Fields log_event refuses to carry: credentials and message texts never reach a log.
FORBIDDEN_FIELDS = frozenset({"password", "token", "key", "text", "message_text", "authorization"})


def scrub(text: str) -> str:
    """Replace every credential found in `text` with [REDACTED]."""
    for pattern, replacement in _SCRUBBERS:
        text = pattern.sub(replacement, text)
    return text


class ScrubCredentialsFilter(logging.Filter):
    """Rewrites a record so its message, extra fields and traceback carry no credentials."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: let the handler report it as usual
            return True
        record.msg, record.args = scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        for name, value in list(record.__dict__.items()):
            if name in _RECORD_ATTRS:
                continue
            if name in FORBIDDEN_FIELDS:
                setattr(record, name, REDACTED)
            elif isinstance(value, str):
                setattr(record, name, scrub(value))
        return True


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    # Objects (a Django request, a socket) are reduced to a scrubbed repr, never dumped.
    return scrub(repr(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, pid, then any extra fields."""

    # Django attaches the request object itself; its repr adds nothing the message lacks.
    SKIPPED_EXTRAS = frozenset({"request", "server_time", "color_message"})

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
            # Several server processes write to one stream in a deployment.
            "pid": record.process,
        }
        for name, value in record.__dict__.items():
            if name in _RECORD_ATTRS or name in self.SKIPPED_EXTRAS or name.startswith("_"):
                continue
            entry[name] = REDACTED if name in FORBIDDEN_FIELDS else _json_value(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = scrub(record.exc_text)
        if record.stack_info:
            entry["stack"] = scrub(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_event(logger: logging.Logger, event: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log a named event with structured fields, e.g. log_event(log, "ws.disconnect", close_code=1000, duration_ms=812).

    Fields become JSON keys under LOG_FORMAT=json and `key=value` pairs in text
    logs. Credential and message-text fields are refused (logged as [REDACTED]).
    """
    if not logger.isEnabledFor(level):  # the fields and summary are built for every connection otherwise
        return
    clean = {name: (REDACTED if name in FORBIDDEN_FIELDS else value) for name, value in fields.items()}
    clashes = _RECORD_ATTRS.intersection(clean)
    for name in clashes:  # `extra` may not overwrite LogRecord attributes
        clean[f"{name}_"] = clean.pop(name)
    summary = " ".join(f"{name}={value}" for name, value in clean.items())
    logger.log(level, "%s%s", event, f" {summary}" if summary else "", extra={"event": event, **clean})


_ACCESS_LOGGER = logging.getLogger("daphne.access")


def access_log(protocol: str, action: str, details: dict[str, Any]) -> None:
    """Daphne's action logger (HTTP requests, WebSocket handshakes) as scrubbed `daphne.access` events."""
    if not _ACCESS_LOGGER.isEnabledFor(logging.INFO):  # scrubbing every handshake's path for nothing
        return
    path = scrub(str(details.get("path", "")))
    fields: dict[str, Any] = {"client": details.get("client"), "path": path}
    if protocol == "http":
        if action != "complete":
            return
        time_taken = details.get("time_taken")
        fields.update(
            method=details.get("method"),
            status=details.get("status"),
            size=details.get("size"),
            duration_ms=round(time_taken * 1000, 1) if isinstance(time_taken, (int, float)) else None,
        )
        log_event(_ACCESS_LOGGER, "http.request", **fields)
    elif protocol == "websocket":
        log_event(_ACCESS_LOGGER, f"ws.{action}", **fields)
