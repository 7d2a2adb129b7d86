"""WebSocket handshake policy (api_docs/PROTOCOL.md §2, Authentication).

Browsers authenticate with the session cookie and always send an Origin, which
must be an allowed host. Native clients send no Origin and authenticate with an
API token, as the `Authorization: Token <key>` header or the `?token=<key>` query
parameter. Anything else reaches the consumer as AnonymousUser and is refused.
"""

from typing import Any
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from rest_framework.authtoken.models import Token

from chat.core.db import db_thread

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


def has_origin(scope: Scope) -> bool:
    return any(name == b"origin" for name, _ in scope.get("headers", []))


@db_thread
def user_for_token(key: str) -> Any:
    """The active user owning this token, or AnonymousUser."""
    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return AnonymousUser()
    return token.user


class TokenOrSessionAuthMiddleware:
    """Authenticate by token, or by session only for browser (Origin) handshakes.

    Token connections skip the session and cookie middleware altogether: no session
    look-up at the handshake, and no session wrapper around every frame sent.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.session_auth = AuthMiddlewareStack(inner)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> Any:
        key = token_from_scope(scope)
        if key is not None:
            return await self.inner(dict(scope, user=await user_for_token(key), auth_token=key), receive, send)
        if not has_origin(scope):
            # A cookie without an Origin is not a browser: only tokens are accepted there.
            return await self.inner(dict(scope, user=AnonymousUser(), auth_token=None), receive, send)
        return await self.session_auth(dict(scope, auth_token=None), receive, send)


class BrowserOriginValidator(OriginValidator):
    """Refuse a handshake whose Origin is not an allowed host; accept one with no Origin (native clients)."""

    def valid_origin(self, parsed_origin: Any) -> bool:
        return parsed_origin is None or self.validate_origin(parsed_origin)


def websocket_auth_stack(inner: Any) -> Any:
    """Origin check, then token or session authentication, around the WebSocket router."""
    allowed = settings.ALLOWED_HOSTS or (["localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
    return BrowserOriginValidator(TokenOrSessionAuthMiddleware(inner), allowed)
