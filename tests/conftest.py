from __future__ import annotations

import os

import pytest
from channels.layers import channel_layers
from django.conf import settings

from tests.servers import ServerDatabase, prepare_server_database, start_daphne


def require_service(available: bool, reason: str) -> None:
    """Skip a test whose service is missing, or fail it when REQUIRE_SERVICES=1 (as in CI)."""
    if available:
        return
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture
def feed():
    """An API client holding a feed user's token (the 'feed race' permission, not staff)."""
    from django.contrib.auth.models import Permission, User
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    user = User.objects.create_user("tote-feed")
    user.user_permissions.add(Permission.objects.get(codename="feed_race"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def redis_url() -> str:
    """The Redis the channel layer uses; the test is skipped (or failed in CI) without it."""
    require_service(bool(settings.REDIS_URL), "REDIS_URL is not set: this test needs Redis")
    return settings.REDIS_URL


@pytest.fixture(autouse=True, scope="session")
def fast_password_hashing():
    """Hash the test users' passwords with MD5: the production hasher (PBKDF2, a million rounds)
    costs about 0.3 s per user created and per login, which every admin test pays. Servers the
    tests start keep the production hasher."""
    from django.test import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """Give each test its own channel layer instance, bound to the test's own event loop."""
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(scope="session")
def server_database(tmp_path_factory) -> ServerDatabase:
    """A migrated database holding the fixture race day, for server processes to share."""
    database = prepare_server_database(tmp_path_factory.mktemp("server-db"))
    yield database
    database.drop()


@pytest.fixture(scope="session")
def daphne_server(server_database, tmp_path_factory):
    """A real Daphne serving the project, started as `make run` starts it."""
    server = start_daphne(server_database, log_dir=tmp_path_factory.mktemp("daphne"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def paced_server(server_database, tmp_path_factory):
    """A real Daphne whose simulated markets send odds every 0.5-1 s (a race lasts about 7 s);
    each test watches fixture races of its own."""
    server = start_daphne(server_database, log_dir=tmp_path_factory.mktemp("paced"), SIMULATION_SPEEDUP="10")
    yield server
    server.stop()


def pytest_sessionfinish(session, exitstatus) -> None:
    """Delete the Redis keys this run created (its own prefix only; nothing else is touched)."""
    if not settings.REDIS_URL:
        return
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{settings.CHANNEL_LAYER_PREFIX}*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass
    finally:
        client.close()


@pytest.fixture
async def stop_live_tasks():
    """Stop the simulations and fan-out that this test's connections started, before its event
    loop ends, and close the database connections their worker thread kept."""
    from channels.db import database_sync_to_async
    from django.db import connections

    from live.market.supervisor import simulation_supervisor_shutdown
    from live.protocol.audience import audience_close
    from live.protocol.fanout import race_fanout_close
    from live.protocol.summaries import summary_board_close

    yield
    await simulation_supervisor_shutdown()
    await summary_board_close()
    await audience_close()
    await race_fanout_close()
    await database_sync_to_async(connections.close_all)()
