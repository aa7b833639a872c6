"""Settings come from the environment, with embedded defaults that need no services."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.servers import REPO_DIR

PRINT_SETTINGS = (
    "import json, django; from django.conf import settings; django.setup(); "
    "print(json.dumps({'engine': settings.DATABASES['default']['ENGINE'], "
    "'name': str(settings.DATABASES['default']['NAME']), "
    "'layer': settings.CHANNEL_LAYERS['default']['BACKEND'], "
    "'debug': settings.DEBUG, 'hosts': settings.ALLOWED_HOSTS}))"
)
# What `python -c "import secrets; print(secrets.token_urlsafe(50))"` prints, as the message says.
GOOD_KEY = "Zq3vN8x_Lr0tYw5cKp2mHs9dJf4gBn7aUe1iOo6lQz-VRkXyTc"


def settings_under(**environment: str) -> subprocess.CompletedProcess:
    clean = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "racing.settings", **environment}
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS], cwd=REPO_DIR, env=clean, capture_output=True, text=True
    )


def test_with_nothing_set_but_debug_it_runs_on_sqlite_and_the_in_memory_layer():
    result = settings_under(DEBUG="1")

    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["engine"] == "django.db.backends.sqlite3"
    assert loaded["name"].endswith("db.sqlite3")
    assert loaded["layer"] == "channels.layers.InMemoryChannelLayer"
    assert loaded["hosts"] == ["localhost", "127.0.0.1", "[::1]"]


def test_without_debug_a_secret_key_is_required():
    result = settings_under()

    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr
    assert 'python -c "import secrets; print(secrets.token_urlsafe(50))"' in result.stderr


@pytest.mark.parametrize(
    "key, reason",
    [
        ("change-me-to-50-or-more-random-characters-from-a-password-generator", "placeholder"),
        ("change-me", "placeholder"),
        ("Change-Me-Please-0123456789-0123456789-0123456789-0123456789", "placeholder"),
        ("s3cret-but-only-forty-nine-characters-long-abcdef", "49 characters long; it needs 50"),
        ("ab" * 40, "2 distinct characters; it needs 5"),
        ("django-insecure-" + GOOD_KEY, "'django-insecure-'"),
    ],
)
def test_without_debug_a_weak_or_placeholder_key_is_refused_with_how_to_make_one(key, reason):
    result = settings_under(SECRET_KEY=key)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert reason in result.stderr
    assert "secrets.token_urlsafe(50)" in result.stderr


def test_with_debug_on_any_key_will_do():
    result = settings_under(DEBUG="1", SECRET_KEY="change-me")

    assert result.returncode == 0, result.stderr


def test_database_url_selects_postgresql_and_redis_url_the_redis_layer():
    result = settings_under(
        SECRET_KEY=GOOD_KEY,
        DATABASE_URL="postgres://racing@db.internal:5432/raceday",
        REDIS_URL="redis://cache.internal:6379/2",
        ALLOWED_HOSTS="live.racing.example, .racing.example",
    )

    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded == {
        "engine": "django.db.backends.postgresql",
        "name": "raceday",
        "layer": "channels_redis.core.RedisChannelLayer",
        "debug": False,
        "hosts": ["live.racing.example", ".racing.example"],
    }


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("0", False), ("off", False)])
def test_debug_is_read_as_a_boolean(value, expected):
    result = settings_under(DEBUG=value, SECRET_KEY=GOOD_KEY)

    assert json.loads(result.stdout)["debug"] is expected
