"""
Settings for the race-day server, read from the environment with embedded defaults.

With nothing set, the server runs on SQLite and the in-memory channel layer (one process, no
services). Production differences are values, not code paths: ``DATABASE_URL`` selects
PostgreSQL, ``REDIS_URL`` the Redis channel layer that lets several Daphne processes share races.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.checks.security.base import (
    SECRET_KEY_INSECURE_PREFIX,
    SECRET_KEY_MIN_LENGTH,
    SECRET_KEY_MIN_UNIQUE_CHARACTERS,
)
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, *, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, *, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


# --- Core -------------------------------------------------------------------------------------

DEBUG = env_bool("DEBUG", default=False)

# Keys that appear in this repository's examples (deploy/env.example) or that anyone would guess:
# a server started with one signs sessions and password resets with a key the world knows.
PLACEHOLDER_SECRET_KEYS = frozenset({
    "change-me-to-50-or-more-random-characters-from-a-password-generator",  # deploy/env.example
    "change-me", "changeme", "change-this", "changethis", "replace-me", "replaceme",
    "secret", "secret-key", "secretkey", "your-secret-key", "mysecretkey", "django-secret-key",
})  # fmt: skip
GENERATE_SECRET_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(50))"'


def secret_key_problem(key: str) -> str | None:
    """Return why ``key`` must not sign a production server's sessions, or None if it may.

    The length, variety and prefix rules are those of Django's own check (security.W009), which
    `manage.py check --deploy` only warns about; a server with DEBUG off refuses to start instead.
    """
    if not key:
        return "SECRET_KEY must be set when DEBUG is off"
    if key.strip().lower() in PLACEHOLDER_SECRET_KEYS or key.lower().startswith(("change-me", "changeme")):
        return "SECRET_KEY is a placeholder from the examples, known to everyone who has read them"
    if key.startswith(SECRET_KEY_INSECURE_PREFIX):
        return f"SECRET_KEY starts with {SECRET_KEY_INSECURE_PREFIX!r}, Django's mark of a development key"
    if len(key) < SECRET_KEY_MIN_LENGTH:
        return f"SECRET_KEY is {len(key)} characters long; it needs {SECRET_KEY_MIN_LENGTH} or more"
    if len(set(key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS:
        return (
            f"SECRET_KEY has {len(set(key))} distinct characters; it needs {SECRET_KEY_MIN_UNIQUE_CHARACTERS} or more"
        )
    return None


SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not DEBUG and (problem := secret_key_problem(SECRET_KEY)):
    raise ImproperlyConfigured(
        f"{problem}. Generate a key with\n    {GENERATE_SECRET_KEY}\n"
        "and set SECRET_KEY to it in the environment (production: /etc/racing/env, see "
        "deploy/env.example), or set DEBUG=1 for local development."
    )
if not SECRET_KEY:
    SECRET_KEY = "django-insecure-local-development-only"  # noqa: S105 - DEBUG only

# Browsers' WebSocket Origin headers are checked against these too (see live/security.py).
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Locks out repeated failed logins (see "Login throttling" below).
    "axes",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Race fields imported, results and race cards exported (races/racecard/, docs/race-office.md).
    "import_export",
    "races",
    "live",
    "live.board",
    # The project's own system checks (racing/checks.py): static files collected, for one.
    "racing.apps.RacingConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files straight from the app server, compressed and with far-future cache headers.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "racing.urls"
ASGI_APPLICATION = "racing.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

# --- HTTPS and cookies (production values come from the environment; see deploy/env.example) ----

# Behind a TLS-terminating proxy (deploy/nginx.conf) that sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", default=False) else None
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", default=False)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=False)
X_FRAME_OPTIONS = "DENY"

# --- Database ---------------------------------------------------------------------------------

DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        # Under ASGI every sync_to_async thread would keep its own persistent connection;
        # closing after each unit of work is the safe default (a pooler belongs in front).
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "0")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets WebSocket connects read while the simulator writes odds snapshots, and
    # IMMEDIATE transactions fail fast instead of deadlocking on lock upgrades.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channel layer ----------------------------------------------------------------------------

REDIS_URL = os.environ.get("REDIS_URL", "")
# Keys of this deployment in Redis start with this prefix, so tests and several deployments can
# share one Redis without touching each other's keys.
CHANNEL_LAYER_PREFIX = os.environ.get("CHANNEL_LAYER_PREFIX", "racing")

# redis-py 8 reads with a 5 s socket timeout by default, the same 5 s that channels-redis blocks
# in BZPOPMIN waiting for a client's next message: idle clients' reads then fail with "Timeout
# reading" (django/channels_redis#422). Reads may take the blocking time plus this margin; a
# connection to a dead Redis is still noticed within it.
REDIS_SOCKET_TIMEOUT_S = 5 + 5

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": REDIS_SOCKET_TIMEOUT_S}],
                "prefix": CHANNEL_LAYER_PREFIX,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- WebSocket protocol -----------------------------------------------------------------------

# Frames larger than this close the connection with 1009 (docs/protocol.md).
WEBSOCKET_MAX_MESSAGE_BYTES = 64 * 1024
# A client may send this many messages a second on average (bursts of twice as many); past
# that it is closed with 4429. Real clients send one subscribe and the odd ping.
WEBSOCKET_MAX_MESSAGES_PER_S = float(os.environ.get("WEBSOCKET_MAX_MESSAGES_PER_S", "5"))
# Open connections one address may hold in one process (4429 past it). Generous: a mobile
# carrier's NAT puts many phones behind one address.
WEBSOCKET_MAX_CONNECTIONS_PER_ADDRESS = int(os.environ.get("WEBSOCKET_MAX_CONNECTIONS_PER_ADDRESS", "1000"))
# Races one /ws/live connection may follow at once: a race day's card across a few meetings.
# Past it a subscribe is answered with an error (4429) and the connection carries on.
WEBSOCKET_MAX_SUBSCRIPTIONS = int(os.environ.get("WEBSOCKET_MAX_SUBSCRIPTIONS", "50"))
# A client resuming with last_seq is replayed at most this many missed updates; further behind,
# it is sent the race afresh (subscribed with "resumed": false) instead.
WEBSOCKET_RESUME_MAX_UPDATES = int(os.environ.get("WEBSOCKET_RESUME_MAX_UPDATES", "1000"))
# Live updates held for a client while its replay is read from the database; past this it is
# closed with 4008 (it can reconnect and resume).
WEBSOCKET_MAX_HELD_UPDATES = int(os.environ.get("WEBSOCKET_MAX_HELD_UPDATES", "1000"))
# Bytes the server may hold for a client that is not reading; past it the client is closed with
# 4008 and may reconnect. About 400 odds updates of a big field: minutes of a stalled phone.
WEBSOCKET_MAX_BUFFERED_BYTES = int(os.environ.get("WEBSOCKET_MAX_BUFFERED_BYTES", str(256 * 1024)))
# The kernel's send buffer per connection (0: the kernel's own autotuning, up to 4 MiB a socket).
# With the bound above, what one stalled client can hold is at most these two together.
WEBSOCKET_SEND_BUFFER_BYTES = int(os.environ.get("WEBSOCKET_SEND_BUFFER_BYTES", str(64 * 1024)))
# A client closed for not reading (4008) may read what is already on its way, close frame last,
# for this long before the connection is dropped: a phone back from a tunnel learns why.
WEBSOCKET_SLOW_CLOSE_GRACE_S = float(os.environ.get("WEBSOCKET_SLOW_CLOSE_GRACE_S", "30"))

# --- HTTP requests, as Daphne reads them (live/protocol/daphne.py) ---------------------------------

# A request body larger than this is answered 413 before it is read, not buffered whole first.
# The API's bodies are a few KiB (a 24-runner odds post is under 2 KiB); admin forms are small.
HTTP_MAX_BODY_BYTES = int(os.environ.get("HTTP_MAX_BODY_BYTES", str(2 * 1024 * 1024)))
# Django applies the same bound under any other server (a JSON 413 from the API too).
DATA_UPLOAD_MAX_MEMORY_SIZE = HTTP_MAX_BODY_BYTES
# Request headers must be complete this long after the connection opens (408 otherwise): a
# client that trickles its headers (slowloris) cannot hold a connection for minutes.
HTTP_HEADERS_TIMEOUT_S = float(os.environ.get("HTTP_HEADERS_TIMEOUT_S", "10"))
# Connections one address may hold whose first request is not complete yet (429 past it).
# Generous for the same reason as the WebSocket limit: a carrier's NAT, a connection storm.
HTTP_MAX_PENDING_PER_ADDRESS = int(os.environ.get("HTTP_MAX_PENDING_PER_ADDRESS", "500"))

# --- Auth -------------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Login throttling (django-axes) -----------------------------------------------------------

# Password guessing at /admin/login/ is locked out per username *and* client address: the same
# user from another address, and other users from this one, can still log in. The feed API's
# tokens (DRF TokenAuthentication) never go through these backends and are not throttled here.
AUTHENTICATION_BACKENDS = [
    # First, so that a locked-out username and address is refused before a password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))  # 5 typos is not a guesser
LOGIN_LOCKOUT_MINUTES = int(os.environ.get("LOGIN_LOCKOUT_MINUTES", "15"))
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# Failures are forgotten this long after the last one, and a lockout lasts this long after the
# last attempt: every attempt during a lockout starts it again, so a script that keeps guessing
# stays out.
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
AXES_RESET_ON_SUCCESS = True  # a login that succeeds forgets that username and address's failures
AXES_COOLOFF_MESSAGE = (
    "Too many failed logins: this username is locked out from your address for "
    f"{LOGIN_LOCKOUT_MINUTES} minutes after the last attempt (each attempt until then starts "
    f"the {LOGIN_LOCKOUT_MINUTES} minutes again). Try again in {LOGIN_LOCKOUT_MINUTES} minutes, "
    "or ask another administrator to unlock it (admin: Axes, Access attempts; or "
    "manage.py axes_reset_username USERNAME)."
)
# The client address is REMOTE_ADDR: Daphne's --proxy-headers (deploy/systemd) already sets it
# from nginx's X-Forwarded-For, and without a proxy a client's own X-Forwarded-For must not
# choose its address. django-axes reads other headers only through django-ipware, which is not
# installed; were it, this keeps it to REMOTE_ADDR too.
AXES_IPWARE_META_PRECEDENCE_ORDER = ("REMOTE_ADDR",)

# --- Internationalisation ---------------------------------------------------------------------

LANGUAGE_CODE = "en-nz"
# Race times are entered and shown in the venue's local time; New Zealand by default.
TIME_ZONE = os.environ.get("TIME_ZONE", "Pacific/Auckland")
USE_I18N = True
USE_TZ = True

# --- Static files -----------------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed names (cache busting) after `manage.py collectstatic`; with DEBUG on, plain names.
    "staticfiles": {
        "BACKEND": os.environ.get("STATICFILES_STORAGE", "whitenoise.storage.CompressedManifestStaticFilesStorage")
    },
}
# With DEBUG on, serve straight from the apps' static folders: no collectstatic for `make run`.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# --- REST framework ---------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON only: the strict fields refuse form-encoded strings anyway, and multipart would spool
    # uploads to disk. This parser turns a body nested too deeply to parse into a 400, not a 500.
    "DEFAULT_PARSER_CLASSES": ["races.parsers.JSONParser"],
    # A body over DATA_UPLOAD_MAX_MEMORY_SIZE is a JSON 413 instead of Django's HTML 400 page.
    "EXCEPTION_HANDLER": "racing.views.api_exception_handler",
    # Token first: an unauthenticated write is then told 401 with how to authenticate.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PAGINATION_CLASS": "races.pagination.Pages",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Race-day server API",
    "DESCRIPTION": (
        "Race data for apps that keep no socket open, and the write path of a live feed. "
        "Live updates stream over the WebSocket /ws/races/{race_id} (docs/protocol.md)."
    ),
    "VERSION": "1.0.0",
    # 3.1: JSON Schema's own null and oneOf, which the result entry's two shapes need.
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,  # the schema documents the API, not itself
    # What the serializers cannot say (the error body, public reads, the feed's constraints,
    # links between operations) is added by races/openapi.py.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "races.openapi.postprocess"],
    # A race's status, and a declared result's (always finished): two enums, named.
    "ENUM_NAME_OVERRIDES": {
        "RaceStatusEnum": "races.models.Race.Status",
        "ResultStatusEnum": ["interim", "protest", "official"],
    },
    # The interactive docs' assets are served from this project, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Logging ----------------------------------------------------------------------------------

LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "daphne": {"level": "WARNING"},
    },
}

# --- Simulated market -------------------------------------------------------------------------

# Until a live feed is wired, a race's market is simulated while anyone watches it.
SIMULATION_ENABLED = env_bool("SIMULATION_ENABLED", default=True)
# Divides every simulated delay: SIMULATION_SPEEDUP=100 runs a 60 s market in 0.6 s.
SIMULATION_SPEEDUP = float(os.environ.get("SIMULATION_SPEEDUP", "1"))
if not SIMULATION_SPEEDUP > 0:
    raise ImproperlyConfigured("SIMULATION_SPEEDUP must be a number above 0.")
SIMULATION_ODDS_INTERVAL_S = (5.0, 10.0)  # the spec: odds every 5-10 seconds ...
SIMULATION_MARKET_DURATION_S = 60.0  # ... for about 60 seconds, then the result
# One process simulates a race, holding a lease in Redis that it renews every heartbeat; a
# crashed process's races are taken over once its lease lapses. Not divided by the speedup:
# these guard against real failures, which take real time.
SIMULATION_HEARTBEAT_S = float(os.environ.get("SIMULATION_HEARTBEAT_S", "1"))
SIMULATION_LEASE_S = float(os.environ.get("SIMULATION_LEASE_S", "5"))
# A process's viewers count for this long after its last heartbeat (a crashed process's
# viewers stop counting after it).
SIMULATION_PRESENCE_TTL_S = 3 * SIMULATION_HEARTBEAT_S
