"""Redis Sentinel for Django's cache: a connection pool class that RedisCache can build from its LOCATION.

channels-redis supports Sentinel natively (a `hosts` entry with `sentinels` and
`master_name`); Django's RedisCache only knows URLs, so this pool reads the db and
password from the URL and asks the sentinels where the current master is.
"""

from typing import Any

from redis.connection import parse_url
from redis.sentinel import Sentinel, SentinelConnectionPool


class SentinelCachePool(SentinelConnectionPool):
    """A SentinelConnectionPool with the `from_url` constructor Django's RedisCache calls."""

    @classmethod
    def from_url(  # type: ignore[override]
        cls,
        url: str,
        *,
        sentinels: list[tuple[str, int]],
        master_name: str,
        sentinel_kwargs: dict[str, Any] | None = None,
        parser_class: Any = None,
        **kwargs: Any,
    ) -> "SentinelCachePool":
        """Build the pool; `url` contributes only db, username and password (the host comes from the sentinels)."""
        parsed = parse_url(url)
        for name in ("db", "username", "password"):
            if parsed.get(name) is not None:
                kwargs.setdefault(name, parsed[name])
        if parser_class is not None:
            kwargs["parser_class"] = parser_class
        return cls(master_name, Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs), **kwargs)
