"""/healthz: the process's live counts, for load balancers and for the soak run's leak checks."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient

from racing.asgi import application
from tests import factories

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("stop_live_tasks")]


async def test_health_counts_connections_and_watched_races_and_they_return_to_zero(settings):
    settings.SIMULATION_ENABLED = False
    race = await factories.arace_create(starter_count=2)
    client = AsyncClient()
    before = (await client.get("/healthz")).json()

    communicator = WebsocketCommunicator(application, f"/ws/races/{race.pk}")
    await communicator.connect()
    await communicator.receive_json_from()
    during = (await client.get("/healthz")).json()
    await communicator.disconnect()
    after = (await client.get("/healthz")).json()

    assert before["status"] == "ok"
    assert (during["websocket_connections"], during["races_watched"]) == (1, 1)
    assert (after["websocket_connections"], after["races_watched"]) == (0, 0)
    assert set(after) == {
        "status", "websocket_connections", "races_watched", "simulations_running", "asyncio_tasks",
        "http_requests_pending", "degraded",
    }  # fmt: skip
    assert after["degraded"] == []  # every part of the Daphne adapter works with the installed libraries
