"""What the race office does in the admin reaches a race's live clients: each move and field change,
once confirmed, is one numbered message, in order, valid against the protocol."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.urls import reverse

from races.models import Race, Starter
from racing.asgi import application
from tests import factories
from tests.spec import assert_valid
from tests.test_admin_live import change_form
from tests.test_protocol import group_members

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("stop_live_tasks")]


def race_day_by_the_office(client, race: Race) -> list[int]:
    """Run the race's day from the admin as a race office would; return each response's status."""
    starters = list(Starter.objects.filter(race=race).order_by("runner_number"))

    def race_move(move: str, **data) -> int:
        return client.post(
            reverse("admin:races_race_race_day", args=[race.pk, move]), {"post": "yes", **data}
        ).status_code

    def starter_move(starter: Starter, move: str, **data) -> int:
        url = reverse("admin:races_starter_race_day", args=[starter.pk, move])
        return client.post(url, {"post": "yes", **data}).status_code

    codes = [
        race_move("open"),
        starter_move(starters[3], "scratch"),  # a late scratching
        starter_move(starters[0], "driver", driver_name="Blair Orange"),
        race_move("delay", minutes="5", reason="ambulance on track"),
        race_move("close"),
        race_move("official"),  # refused: no placings yet; nothing is sent
    ]
    placings = [(2, False), (1, False), (3, False), (None, False)]  # the scratched one gets none
    entered = client.post(
        reverse("admin:races_race_change", args=[race.pk]), {**change_form(race, placings), "result_as": "interim"}
    )
    codes += [entered.status_code, race_move("protest", reason="No. 1 against No. 2"), race_move("official")]
    return codes


async def test_the_offices_race_day_reaches_a_client_in_seq_order(admin_client, settings):
    settings.SIMULATION_ENABLED = False  # only the office's changes
    race = await factories.arace_create(starter_count=4)
    client = WebsocketCommunicator(application, f"/ws/races/{race.pk}")
    assert (await client.connect())[0]
    assert (await client.receive_json_from())["type"] == "initial_state"

    codes = await sync_to_async(race_day_by_the_office)(admin_client, race)
    received = []
    while not received or received[-1]["type"] != "result_update":
        received.append(assert_valid(await client.receive_json_from(timeout=5)))

    assert codes == [302] * 9
    assert [(m["type"], m.get("change") or m.get("status")) for m in received] == [
        ("race_status", "open"),
        ("starter_update", "scratched"),
        ("starter_update", "driver_changed"),
        ("race_status", "open"),  # the delay
        ("race_status", "closed"),
        ("race_status", "interim"),
        ("interim_result", None),
        ("race_status", "protest"),
        ("race_status", "official"),
        ("result_update", None),
    ]
    assert [m["seq"] for m in received] == list(range(1, 11))
    scratching, driver_change, delay, protest = received[1], received[2], received[3], received[7]
    assert scratching["starter"]["scratched"] is True
    assert driver_change["starter"]["driver_name"] == "Blair Orange"
    assert delay["reason"] == "ambulance on track" and protest["reason"] == "No. 1 against No. 2"
    horse_ids = await database_sync_to_async(
        lambda: list(Starter.objects.filter(race=race).order_by("runner_number").values_list("horse_id", flat=True))
    )()
    assert received[-1]["results"] == [
        {"horse_id": horse_ids[1], "placing": 1, "finished": True},
        {"horse_id": horse_ids[0], "placing": 2, "finished": True},
        {"horse_id": horse_ids[2], "placing": 3, "finished": True},
    ]
    assert await client.receive_nothing(timeout=0.2)
    await client.disconnect()
    assert await group_members(race.pk) == 0
