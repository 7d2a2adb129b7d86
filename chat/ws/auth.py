"""WebSocket handshake policy (api_docs/PROTOCOL.md §2 Authentication, §8 Cross-origin SPAs).

Every Origin check compares scheme, host and port exactly:
- no Origin: not a browser; an API token (header `Authorization: Token <key>` or the
  `?token=<key>` query parameter) is the only credential accepted;
- the server's own origin (the handshake's scheme and its Host header, which must be
  one of ALLOWED_HOSTS): a token or the Django session cookie;
- an origin in settings.WS_ALLOWED_ORIGINS (by default CORS_ALLOWED_ORIGINS): a token
  only, since a cookie sent along from another origin proves nothing about the page;
- any other origin: refused with HTTP 403, whatever it carries.
Anything else reaches the consumer as AnonymousUser and is refused there.
"""

import functools
from typing import Any
from urllib.parse import parse_qs, urlsplit

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured
from django.http.request import split_domain_port, validate_host

from chat.core import selectors
from chat.core.db import db_thread
from chat.ws.handshake import OutageGuard

Scope = dict[str, Any]


def token_from_scope(scope: Scope) -> str | None:
    """The API token the handshake carries, from the header or the query string."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            if scheme.lower() == "token" and key.strip():
                return key.strip()
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a handshake header, or None."""
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


Origin = tuple[str, str, int]
DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_origin(value: str) -> Origin | None:
    """(scheme, host, port) of an origin such as `https://app.example.com`, default port filled in; None if it is none."""
    try:
        parsed = urlsplit(value.strip())
        scheme = parsed.scheme.lower()
        port = parsed.port
    except ValueError:
        return None
    if scheme not in DEFAULT_PORTS or not parsed.hostname or parsed.path not in ("", "/") or parsed.query or parsed.username:
        return None
    return scheme, parsed.hostname.lower(), port or DEFAULT_PORTS[scheme]


@functools.cache
def _allowed_origins(values: tuple[str, ...]) -> frozenset[Origin]:
    origins = set()
    for value in values:
        origin = parse_origin(value)
        if origin is None:
            raise ImproperlyConfigured(f"WS_ALLOWED_ORIGINS: {value!r} is not an origin like https://app.example.com[:port]")
        origins.add(origin)
    return frozenset(origins)


def allowed_origins() -> frozenset[Origin]:
    """The cross-origin pages allowed to open the WebSocket (with a token)."""
    return _allowed_origins(tuple(settings.WS_ALLOWED_ORIGINS))


def own_origin(scope: Scope) -> Origin | None:
    """The server's origin as this handshake reached it: its scheme and Host header; None if the host is not allowed."""
    host = header(scope, b"host")
    if not host:
        return None
    domain, _ = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS or (["localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
    if not domain or not validate_host(domain, allowed):
        return None
    secure = scope.get("scheme") in ("wss", "https")
    if settings.SECURE_PROXY_SSL_HEADER:
        # Behind a TLS-terminating proxy the page is https although the hop to us is not.
        name, value = settings.SECURE_PROXY_SSL_HEADER
        forwarded = header(scope, name.removeprefix("HTTP_").lower().replace("_", "-").encode("latin-1"))
        secure = secure or (forwarded is not None and forwarded.split(",")[0].strip() == value)
    return parse_origin(f"{'https' if secure else 'http'}://{host}")


def origin_policy(scope: Scope) -> str:
    """How the handshake's Origin is treated: "native" (none), "same", "cross" (listed) or "refused"."""
    value = header(scope, b"origin")
    if value is None:
        return "native"
    origin = parse_origin(value)
    if origin is None:
        return "refused"
    if origin == own_origin(scope):
        return "same"
    if origin in allowed_origins():
        return "cross"
    return "refused"


@db_thread
def user_for_token(key: str) -> Any:
    """The active user owning this token, or AnonymousUser."""
    user = selectors.token_user(key=key)
    if user is None or not user.is_active:
        return AnonymousUser()
    return user


# Scope key: the handshake's token (scope["auth_token"]) is still to be checked, by the
# consumer, together with recording its connection (ChatConnection.authenticate); until
# then the scope's user is anonymous.
TOKEN_UNCHECKED = "chat.token_unchecked"


class TokenOrSessionAuthMiddleware:
    """Check the Origin, then authenticate by token, or by session only for same-origin pages.

    Token connections skip the session and cookie middleware altogether: no session
    look-up at the handshake, and no session wrapper around every frame sent. With
    `consumer_checks_tokens`, a token is left to the consumer (TOKEN_UNCHECKED), which
    checks it in the same database round trip that records the connection.
    """

    def __init__(self, inner: Any, *, consumer_checks_tokens: bool = False) -> None:
        self.inner = inner
        self.session_auth = AuthMiddlewareStack(inner)
        self.consumer_checks_tokens = consumer_checks_tokens

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> Any:
        policy = origin_policy(scope)
        if policy == "refused":
            return await WebsocketDenier()(scope, receive, send)
        key = token_from_scope(scope)
        # The server's own scope is updated, not copied: a copy per middleware would live as
        # long as the connection (its frame awaits the inner application), ~0.6 KB each.
        if key is not None:
            if self.consumer_checks_tokens:
                scope.update(user=AnonymousUser(), auth_token=key)
                scope[TOKEN_UNCHECKED] = True
            else:
                scope.update(user=await user_for_token(key), auth_token=key)
            return await self.inner(scope, receive, send)
        if policy != "same":
            # No Origin is no browser, and another origin's cookie proves nothing: only tokens count.
            scope.update(user=AnonymousUser(), auth_token=None)
            return await self.inner(scope, receive, send)
        return await self.session_auth(dict(scope, auth_token=None), receive, send)


def websocket_auth_stack(inner: Any, *, consumer_checks_tokens: bool = False) -> Any:
    """Origin check, then token or session authentication, around the WebSocket router; outages close with 4503.

    `consumer_checks_tokens`: every consumer behind it checks TOKEN_UNCHECKED tokens itself (as ChatConnection does).
    """
    allowed_origins()  # a malformed WS_ALLOWED_ORIGINS fails at start-up, not at the first handshake
    return OutageGuard(TokenOrSessionAuthMiddleware(inner, consumer_checks_tokens=consumer_checks_tokens))
