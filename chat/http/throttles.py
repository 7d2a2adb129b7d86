"""Per-address throttles for the anonymous, password-hashing endpoints (api_docs/PROTOCOL.md §3 v2)."""

from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from chat.ops import metrics


class AuthRateThrottle(SimpleRateThrottle):
    """Register and token requests per client address (REMOTE_ADDR, or X-Forwarded-For behind TRUSTED_PROXY_COUNT proxies).

    Both endpoints share one budget: each attempt costs a password hash, so together they
    bound what one address can make the server spend.
    """

    scope = "auth"

    def get_cache_key(self, request: Request, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def throttle_failure(self) -> bool:
        metrics.rate_limited("auth")
        return False
