"""Shared fixtures. `make test` sets REQUIRE_SERVICES=1: then PostgreSQL and Redis must be used, never skipped."""

import os
import uuid
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from chat.models import Room, User
from tests.factories import RoomFactory, UserFactory

LIVE_TESTS = Path(__file__).resolve().parent / "live"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/live starts real processes: marked `live` (`-m "not live"` skips them)."""
    for item in items:
        if LIVE_TESTS in item.path.parents:
            item.add_marker(pytest.mark.live)


def pytest_configure(config: pytest.Config) -> None:
    # In-process tests create many users; the production hasher is slow on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
    if isinstance(pool, dict):
        # In this process only (live servers keep the production 1.5 s, which the fault tests
        # measure): on a loaded 2-core CI machine a worker thread can wait longer than that for
        # one of the pool's connections, and a spurious 503 would fail an unrelated test.
        pool["timeout"] = 10.0
    if settings.REDIS_URL:
        # Redis pub/sub channels ignore the db number: a prefix of its own keeps this run's
        # events (and its live servers', which inherit REDIS_PREFIX) apart from any other run's.
        prefix = f"test-{uuid.uuid4().hex[:8]}"
        settings.REDIS_PREFIX = prefix
        settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"{prefix}:layer"
        settings.CACHES["default"]["KEY_PREFIX"] = f"{prefix}:cache"
    if os.environ.get("REQUIRE_SERVICES") != "1":
        return
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine:
        raise pytest.UsageError(f"REQUIRE_SERVICES=1 but the database is {engine}: set DATABASE_URL to PostgreSQL")
    if not settings.REDIS_URL:
        raise pytest.UsageError("REQUIRE_SERVICES=1 but REDIS_URL is not set")
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as exc:
        raise pytest.UsageError(f"REQUIRE_SERVICES=1 but Redis at {settings.REDIS_URL} does not answer: {exc}") from exc


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Rate-limit counters must not leak between tests."""
    if not settings.REDIS_URL:
        cache.clear()
        return
    # Only this run's keys: clear() would flush the whole Redis database.
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(client.scan_iter(f"{settings.REDIS_PREFIX}:cache*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def user(db: None) -> User:
    return UserFactory.create()


@pytest.fixture
def other_user(db: None) -> User:
    return UserFactory.create()


@pytest.fixture
def room(user: User) -> Room:
    """A room hosted by `user`."""
    return RoomFactory.create(host=user)


def client_for(user: User) -> APIClient:
    """An HTTP client authenticated with the user's API token, as SPAs and integrators are."""
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api(user: User) -> APIClient:
    return client_for(user)


@pytest.fixture
def other_api(other_user: User) -> APIClient:
    return client_for(other_user)
