"""Settings: every value that varies by deployment is read once from the environment.

With nothing set the project runs as one process on SQLite and the in-memory
channel layer. Production sets DATABASE_URL, REDIS_URL, SECRET_KEY, ALLOWED_HOSTS
and DEBUG=false; see the configuration table in README.md.
"""

import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    """A string setting, or its default when unset or empty."""
    return os.environ.get(name) or default


def env_bool(name: str, default: bool) -> bool:
    """A boolean setting: 1/true/yes/on or 0/false/no/off."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean, not {raw!r}")


def env_number(name: str, default: float, cast: type = int) -> float:
    """A positive number setting."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = cast(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from exc
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be positive, not {raw!r}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated list setting."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


# Development conveniences are on unless DEBUG=false says this is production.
DEBUG = env_bool("DEBUG", True)

DEVELOPMENT_SECRET_KEY = "django-insecure-development-only-never-use-in-production"
SECRET_KEY = env_str("SECRET_KEY", DEVELOPMENT_SECRET_KEY)
if not DEBUG and SECRET_KEY == DEVELOPMENT_SECRET_KEY:
    raise ImproperlyConfigured("DEBUG is off: set SECRET_KEY to a secret value, the development key is public.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# --- HTTPS behind a reverse proxy (production defaults when DEBUG is off; docs/DEPLOYMENT.md) ---
# Only trust X-Forwarded-Proto when the proxy sets it (and strips clients' own): "off" otherwise.
_proxy_ssl_header = os.environ.get("SECURE_PROXY_SSL_HEADER", "off" if DEBUG else "HTTP_X_FORWARDED_PROTO").strip()
SECURE_PROXY_SSL_HEADER = None if _proxy_ssl_header.lower() in {"", "off", "none"} else (_proxy_ssl_header, "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Probes and scrapers talk to each process directly over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "").strip() or (0 if DEBUG else 31536000))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
# Preloading is a commitment to browser vendors that is hard to undo: opt in deliberately.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

# --- CORS for SPA origins (django-cors-headers) --------------------------------------
# e.g. CORS_ALLOWED_ORIGINS=https://app.example.com,https://admin.example.com; none by default.
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", [])
CORS_URLS_REGEX = r"^/api/.*$"
# Token-authenticated SPAs need no cookies; allow them only for a same-site SPA using the session.
CORS_ALLOW_CREDENTIALS = env_bool("CORS_ALLOW_CREDENTIALS", False)
# Pages on other origins that may open the WebSocket, compared exactly (scheme://host:port);
# they must authenticate with a token, never the session cookie (chat/ws/auth.py). The
# server's own origin is always allowed. By default the SPAs that CORS lets call the API.
WS_ALLOWED_ORIGINS = env_list("WS_ALLOWED_ORIGINS", CORS_ALLOWED_ORIGINS)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    # The Swagger UI build, served by api_docs (clients may be offline: no CDN).
    "drf_spectacular_sidecar",
    "channels",
    "chat",
    "api_docs",
]

MIDDLEWARE = [
    # Outermost: whatever fails under /api/ (an oversized body, a 404, DEBUG's pages) answers JSON.
    "chat.http.errors.api_json_errors_middleware",
    # First, so CORS preflights are answered before any redirect or auth.
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (STATIC_ROOT) before anything that touches sessions or the database.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mysite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ASGI_APPLICATION = "mysite.asgi.application"

# --- Database ------------------------------------------------------------------
DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Under ASGI every request runs in a thread of its own, so persistent per-thread
    # connections pile up until PostgreSQL refuses clients: each process borrows from
    # a bounded psycopg pool instead (Django's CONN_MAX_AGE must then be 0).
    DATABASES["default"]["OPTIONS"] = {
        "pool": {
            "min_size": 1,
            "max_size": int(env_number("DATABASE_POOL_SIZE", 10)),
            # api_docs/PROTOCOL.md §3 v2: with the database down a request answers 503 within 2 s, never hangs.
            "timeout": env_number("DATABASE_POOL_TIMEOUT", 1.5, cast=float),
        },
        "connect_timeout": int(env_number("DATABASE_CONNECT_TIMEOUT", 5)),
    }
else:
    # Concurrent WebSocket and HTTP writers would otherwise fail with "database is locked".
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}

# Lets several test runs share one PostgreSQL server side by side.
if os.environ.get("TEST_DATABASE_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["TEST_DATABASE_NAME"]}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "chat.User"

# --- Channel layer and cache -------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
# Each process's share of Redis keys; tests and side-by-side deployments set it apart.
REDIS_PREFIX = env_str("REDIS_PREFIX", "chat")
# Redis Sentinel (high availability): REDIS_SENTINELS=host1:26379,host2:26379 and the
# master's name; REDIS_URL then only contributes the db number and password.
# (Redis Cluster is not supported by channels-redis; see docs/DEPLOYMENT.md.)
REDIS_SENTINELS = [(host, int(port)) for host, _, port in (item.rpartition(":") for item in env_list("REDIS_SENTINELS", []))]
REDIS_SENTINEL_MASTER = env_str("REDIS_SENTINEL_MASTER", "mymaster")
REDIS_SENTINEL_KWARGS = {"password": os.environ["REDIS_SENTINEL_PASSWORD"]} if os.environ.get("REDIS_SENTINEL_PASSWORD") else None
if REDIS_SENTINELS and not REDIS_URL:
    raise ImproperlyConfigured("REDIS_SENTINELS is set: also set REDIS_URL (its db number and password are used).")

if REDIS_URL:
    from redis.connection import parse_url as _parse_redis_url

    _redis_auth = {k: v for k, v in _parse_redis_url(REDIS_URL).items() if k in {"db", "username", "password"} and v}
    REDIS_LAYER_HOST: str | dict = (
        {
            "sentinels": REDIS_SENTINELS,
            "master_name": REDIS_SENTINEL_MASTER,
            "sentinel_kwargs": REDIS_SENTINEL_KWARGS,
            **_redis_auth,
        }
        if REDIS_SENTINELS
        else REDIS_URL
    )
    # "pubsub" (default) publishes each group message once per process: fan-out costs
    # O(processes) in Redis instead of O(subscribers); "core" keeps bounded per-channel
    # queues in Redis. Figures in bench/README.md; either way the database and
    # after_seq are the truth, the layer is best-effort.
    CHANNEL_LAYER = env_str("CHANNEL_LAYER", "pubsub")
    CHANNEL_LAYERS: dict[str, dict[str, Any]]
    if CHANNEL_LAYER == "pubsub":
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": [REDIS_LAYER_HOST], "prefix": f"{REDIS_PREFIX}:layer"},
            }
        }
    elif CHANNEL_LAYER == "core":
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {
                    "hosts": [REDIS_LAYER_HOST],
                    "prefix": f"{REDIS_PREFIX}:layer",
                    "capacity": env_number("CHANNEL_CAPACITY", 1000),
                    "expiry": 60,
                    "group_expiry": 86400,
                },
            }
        }
    else:
        raise ImproperlyConfigured(f"CHANNEL_LAYER must be pubsub or core, not {CHANNEL_LAYER!r}")
    CACHES: dict[str, dict[str, Any]] = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"{REDIS_PREFIX}:cache",
            # A Redis that does not answer fails the request (503) in about a second instead of hanging it.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    if REDIS_SENTINELS:
        CACHES["default"]["OPTIONS"] |= {
            "pool_class": "mysite.redis_sentinel.SentinelCachePool",
            "sentinels": REDIS_SENTINELS,
            "master_name": REDIS_SENTINEL_MASTER,
            "sentinel_kwargs": REDIS_SENTINEL_KWARGS,
        }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Chat tunables (api_docs/PROTOCOL.md §3) ---------------------------------------------------
CHAT_MESSAGE_RATE_LIMIT = env_number("CHAT_MESSAGE_RATE_LIMIT", 20)
CHAT_MESSAGE_RATE_PERIOD = env_number("CHAT_MESSAGE_RATE_PERIOD", 10)
CHAT_PRESENCE_EXPIRY = env_number("CHAT_PRESENCE_EXPIRY", 60)
# Limits of api_docs/PROTOCOL.md §3 (version 2); README.md "Limits" lists them. Over a per-connection
# cap the answer is 429 with retry_after null; the others are flood limits with a retry_after.
CHAT_MAX_SUBSCRIPTIONS_PER_CONNECTION = int(env_number("CHAT_MAX_SUBSCRIPTIONS_PER_CONNECTION", 1000))
CHAT_MAX_ROOMS_PER_CONNECTION = int(env_number("CHAT_MAX_ROOMS_PER_CONNECTION", 500))
CHAT_MAX_CONNECTIONS_PER_USER = int(env_number("CHAT_MAX_CONNECTIONS_PER_USER", 50))
# Inbound frames per connection: a token bucket refilled at RATE per second, holding BURST.
CHAT_WS_FRAME_RATE = env_number("CHAT_WS_FRAME_RATE", 50, cast=float)
CHAT_WS_FRAME_BURST = int(env_number("CHAT_WS_FRAME_BURST", 100))
CHAT_ROOM_CREATE_RATE_LIMIT = int(env_number("CHAT_ROOM_CREATE_RATE_LIMIT", 10))
CHAT_ROOM_CREATE_RATE_PERIOD = int(env_number("CHAT_ROOM_CREATE_RATE_PERIOD", 60))
CHAT_TYPING_INTERVAL = int(env_number("CHAT_TYPING_INTERVAL", 2))
# Registrations and token requests per client address per minute (DRF throttles on the cache).
CHAT_AUTH_RATE_LIMIT = int(env_number("CHAT_AUTH_RATE_LIMIT", 10))
# How many reverse proxies append to X-Forwarded-For in front of the servers: 0 (the default)
# throttles by REMOTE_ADDR and ignores the header, which any client can forge.
TRUSTED_PROXY_COUNT = int(os.environ.get("TRUSTED_PROXY_COUNT", "").strip() or 0)
# Messages older than this many days are deleted by `manage.py prune_messages`; unset keeps them forever.
CHAT_MESSAGE_RETENTION_DAYS = env_number("CHAT_MESSAGE_RETENTION_DAYS", 0) or None

# --- Metrics (chat/ops/metrics.py) --------------------------------------------------------
# /metrics is open under DEBUG; otherwise to `Authorization: Bearer $METRICS_TOKEN` and to
# direct (not proxied) loopback clients unless METRICS_ALLOW_LOCALHOST=false.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "").strip()
METRICS_ALLOW_LOCALHOST = env_bool("METRICS_ALLOW_LOCALHOST", True)

# --- Auth ---------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "chat.http.authentication.CompiledTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["chat.http.parsers.SafeJSONParser"],
    "EXCEPTION_HANDLER": "chat.http.errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {"auth": f"{CHAT_AUTH_RATE_LIMIT}/min"},
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Chat rooms HTTP API",
    "DESCRIPTION": "api_docs/PROTOCOL.md §4. The WebSocket API is described in /api/asyncapi.yaml.",
    "VERSION": "1",
    "LICENSE": {"name": "Proprietary"},
    # Relative: the API is served by whichever host serves this schema.
    "SERVERS": [{"url": "/", "description": "This server"}],
    "SERVE_INCLUDE_SCHEMA": False,
    # Request bodies get their own components, so read-only fields are not asked of clients.
    "COMPONENT_SPLIT_REQUEST": True,
    # The docs pages load their assets from the project (api_docs/urls.py), never from a CDN.
    "SWAGGER_UI_DIST": "/api/docs/assets/swagger-ui-dist",
    "SWAGGER_UI_FAVICON_HREF": "/api/docs/assets/swagger-ui-dist/favicon-32x32.png",
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "api_docs.openapi.finish_schema"],
    # Two choice sets of `role`: a member's (owner, moderator, member) and what set_role may give.
    "ENUM_NAME_OVERRIDES": {"RoleEnum": "chat.models.Role", "AssignableRoleEnum": ["moderator", "member"]},
}

# --- I18N, static -------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# `manage.py collectstatic` gathers the web client's assets here (`make run` runs it); WhiteNoise
# serves them, so a deployment without a reverse proxy needs no flag (daphne serves no files).
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "var" / "static")))
if not DEBUG:
    # Hashed names (chat.3f9a1c.css) and gzip/brotli copies, made by collectstatic; WhiteNoise
    # sends hashed files with a ten-year Cache-Control: immutable.
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
# In development the files come straight from the apps' static/ folders, edits seen at once.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# --- Built-in web pages (chat/web/) ---------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat-index"
LOGOUT_REDIRECT_URL = "login"

# --- Logging (chat/ops/logging.py) -----------------------------------------------------------
# LOG_FORMAT=json prints one JSON object per line; every record is scrubbed of credentials.
LOG_FORMAT = env_str("LOG_FORMAT", "text").lower()
if LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, not {LOG_FORMAT!r}")
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"scrub_credentials": {"()": "chat.ops.logging.ScrubCredentialsFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)-8s %(name)s %(message)s"},
        "json": {"()": "chat.ops.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["scrub_credentials"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # Replace Django's default handlers (unscrubbed, unformatted) with propagation to ours.
    "loggers": {
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "django.server": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
    },
}
