"""Settings from the environment: embedded defaults, service URLs, production safety, and loud failures.

Settings are read once at start-up, so each case starts a fresh Python process with
only the variables it names (plus PATH and HOME), exactly as a deployment would.
"""

import json
import re
import subprocess

import pytest

from tests.live import PYTHON, ROOT, minimal_env, run_servers

# Prints the settings a process ended up with, as JSON.
PROBE = """
import json
import re
import django
from django.conf import settings
django.setup()
from django.db import connection
db = settings.DATABASES["default"]
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
    "ENGINE": db["ENGINE"],
    "NAME": str(db["NAME"]),
    "HOST": db.get("HOST"),
    "PORT": db.get("PORT"),
    "USER": db.get("USER"),
    "POOL": db.get("OPTIONS", {}).get("pool"),
    "TEST_NAME": db.get("TEST", {}).get("NAME"),
    "DRIVER": connection.Database.__name__,
    "LAYER": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "LAYER_CONFIG": settings.CHANNEL_LAYERS["default"].get("CONFIG"),
    "CACHE": settings.CACHES["default"]["BACKEND"],
    "CACHE_LOCATION": settings.CACHES["default"].get("LOCATION"),
    "CACHE_PREFIX": settings.CACHES["default"].get("KEY_PREFIX"),
    "RATE": [settings.CHAT_MESSAGE_RATE_LIMIT, settings.CHAT_MESSAGE_RATE_PERIOD],
    "PRESENCE_EXPIRY": settings.CHAT_PRESENCE_EXPIRY,
}))
"""


def run_probe(**env: str) -> subprocess.CompletedProcess[str]:
    """Load the settings in a new process whose environment is only PATH, HOME and `env`."""
    return subprocess.run(
        [PYTHON, "-c", PROBE],
        cwd=ROOT,
        env=minimal_env(DJANGO_SETTINGS_MODULE="mysite.settings", **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def settings_with(**env: str) -> dict:
    """The settings a process started with `env` ends up with."""
    result = run_probe(**env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """The process failed at start-up with ImproperlyConfigured naming `words`."""
    assert result.returncode != 0, result.stdout
    assert "ImproperlyConfigured" in result.stderr, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    for word in words:
        assert word in message, message


def test_nothing_set_is_one_process_on_sqlite_and_the_in_memory_layer() -> None:
    values = settings_with()
    assert values["DEBUG"] is True
    assert values["ENGINE"] == "django.db.backends.sqlite3"
    assert values["NAME"] == str(ROOT / "db.sqlite3")
    assert values["LAYER"] == "channels.layers.InMemoryChannelLayer"
    assert values["CACHE"] == "django.core.cache.backends.locmem.LocMemCache"
    assert values["ALLOWED_HOSTS"] == ["localhost", "127.0.0.1", "[::1]"]
    # api_docs/PROTOCOL.md §3: 20 messages per 10 s; presence of a crashed process expires within 60 s.
    assert values["RATE"] == [20, 10]
    assert values["PRESENCE_EXPIRY"] == 60


def test_database_url_selects_postgresql_through_psycopg_3() -> None:
    values = settings_with(
        DATABASE_URL="postgres://chat:secret@db.example.internal:5433/chat",
        DATABASE_POOL_SIZE="4",
        TEST_DATABASE_NAME="test_chat_ci",
    )
    assert values["ENGINE"] == "django.db.backends.postgresql"
    assert (values["HOST"], values["PORT"], values["USER"], values["NAME"]) == ("db.example.internal", 5433, "chat", "chat")
    assert values["DRIVER"] == "psycopg"
    # A bounded pool per process: ASGI's thread per request would otherwise pile up connections.
    assert values["POOL"]["max_size"] == 4
    assert values["TEST_NAME"] == "test_chat_ci"


@pytest.mark.parametrize(
    ("layer", "backend"),
    [
        ("", "channels_redis.pubsub.RedisPubSubChannelLayer"),
        ("core", "channels_redis.core.RedisChannelLayer"),
    ],
)
def test_redis_url_selects_the_redis_layer_and_cache(layer: str, backend: str) -> None:
    url = "redis://redis.example.internal:6380/3"
    values = settings_with(REDIS_URL=url, REDIS_PREFIX="tenant-a", CHANNEL_LAYER=layer, CHANNEL_CAPACITY="250")
    assert values["LAYER"] == backend
    assert values["LAYER_CONFIG"]["hosts"] == [url]
    assert values["LAYER_CONFIG"]["prefix"] == "tenant-a:layer"
    if layer == "core":
        assert values["LAYER_CONFIG"]["capacity"] == 250
    assert values["CACHE"] == "django.core.cache.backends.redis.RedisCache"
    assert (values["CACHE_LOCATION"], values["CACHE_PREFIX"]) == (url, "tenant-a:cache")


def test_tunables_come_from_the_environment() -> None:
    values = settings_with(CHAT_MESSAGE_RATE_LIMIT="5", CHAT_MESSAGE_RATE_PERIOD="3", CHAT_PRESENCE_EXPIRY="30")
    assert values["RATE"] == [5, 3]
    assert values["PRESENCE_EXPIRY"] == 30


@pytest.mark.parametrize(
    "env",
    [
        {"DEBUG": "false"},
        {"DEBUG": "false", "SECRET_KEY": ""},
        {"DEBUG": "0", "SECRET_KEY": "django-insecure-development-only-never-use-in-production"},
    ],
    ids=["unset", "empty", "the-development-key"],
)
def test_production_refuses_to_start_without_a_secret_key(env: dict[str, str]) -> None:
    assert_refused(run_probe(**env), "SECRET_KEY")


def test_production_with_a_secret_key_passes_the_system_checks() -> None:
    result = subprocess.run(
        [PYTHON, "manage.py", "check"],
        cwd=ROOT,
        env=minimal_env(DEBUG="false", SECRET_KEY="a-real-secret-" + "x" * 40, ALLOWED_HOSTS="chat.example.com"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DEBUG", "maybe"),
        ("CHAT_MESSAGE_RATE_LIMIT", "abc"),
        ("CHAT_MESSAGE_RATE_PERIOD", "-1"),
        ("CHAT_PRESENCE_EXPIRY", "soon"),
        ("DATABASE_POOL_SIZE", "-5"),
        ("CHANNEL_LAYER", "kafka"),
    ],
)
def test_bad_values_fail_loudly(name: str, value: str) -> None:
    # CHANNEL_LAYER and the pool settings are read only with REDIS_URL and a PostgreSQL DATABASE_URL
    # (loading settings connects to neither).
    services = {"REDIS_URL": "redis://127.0.0.1:6379/0", "DATABASE_URL": "postgres://chat@127.0.0.1:5432/chat"}
    result = run_probe(**{**services, name: value})
    assert_refused(result, name, repr(value))


@pytest.mark.live
def test_a_production_server_without_a_secret_key_exits_at_start_up() -> None:
    # The real entry point (`make run`'s daphne) refuses too, and the harness reports why.
    with pytest.raises(AssertionError, match="exited") as failure:
        with run_servers(1, base_env=minimal_env(DEBUG="false"), timeout=60):
            pass
    assert "SECRET_KEY" in str(failure.value)


def test_readme_documents_every_variable_the_settings_read() -> None:
    source = (ROOT / "mysite" / "settings.py").read_text()
    names = set(re.findall(r"(?:env_\w+|os\.environ\.get)\(\s*\"([A-Z][A-Z0-9_]+)\"", source))
    names |= set(re.findall(r"os\.environ\[\"([A-Z][A-Z0-9_]+)\"\]", source))
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "CHAT_MESSAGE_RATE_LIMIT"} <= names
    table = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `")]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", "\n".join(line.split("|")[1] for line in table)))
    assert names - documented == set(), "add these to README.md's configuration table"
