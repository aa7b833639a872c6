"""Cross-site WebSocket hijacking: browsers from other sites are refused, non-browsers served."""

import pytest
from channels.testing import WebsocketCommunicator

from racing.asgi import application
from tests import factories

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("stop_live_tasks")]


async def connect_with_headers(path: str, headers: list[tuple[bytes, bytes]]):
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect()
    await communicator.disconnect()
    return connected, code


@pytest.fixture
def race_path() -> str:
    return f"/ws/races/{factories.race_create(starter_count=1).pk}"


async def test_a_client_without_origin_is_served(race_path):
    connected, _ = await connect_with_headers(race_path, [])

    assert connected


@pytest.mark.parametrize("origin", [b"http://localhost:8000", b"http://127.0.0.1", b"https://[::1]:8443"])
async def test_a_browser_on_an_allowed_host_is_served(race_path, origin):
    connected, _ = await connect_with_headers(race_path, [(b"origin", origin)])

    assert connected


@pytest.mark.parametrize("origin", [b"https://evil.example", b"null", b"http://localhost.evil.example"])
async def test_a_browser_on_another_site_is_refused(race_path, origin):
    connected, _ = await connect_with_headers(race_path, [(b"origin", origin)])

    assert not connected


async def test_allowed_hosts_decide_which_origins_pass(race_path, settings):
    settings.ALLOWED_HOSTS = [".racing.example"]

    assert (await connect_with_headers(race_path, [(b"origin", b"https://live.racing.example")]))[0]
    assert not (await connect_with_headers(race_path, [(b"origin", b"http://localhost:8000")]))[0]
