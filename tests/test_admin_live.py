"""The admin goes live: a result entered there reaches clients; markets start and reset there."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.urls import reverse

from races.models import OddsSnapshot, Race
from races.services import odds_snapshot_record
from racing.asgi import application
from tests import factories
from tests.spec import assert_valid
from tests.test_admin import inline_management

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("stop_live_tasks")]


def change_form(race: Race, placings: list[tuple[int | None, bool]]) -> dict[str, str]:
    """The race's change form as the office submits it, with these placings / DNF marks."""
    starters = list(race.starters.order_by("runner_number"))
    data = {
        "meeting": str(race.meeting_id),
        "race_number": str(race.race_number),
        "name": race.name,
        "distance_m": str(race.distance_m),
        "start_type": race.start_type or "",
        "gait": race.gait or "",
        **inline_management("starters", len(starters), len(starters)),
    }
    for index, (starter, (placing, did_not_finish)) in enumerate(zip(starters, placings, strict=False)):
        data.update({
            f"starters-{index}-id": str(starter.pk),
            f"starters-{index}-race": str(race.pk),
            f"starters-{index}-runner_number": str(starter.runner_number),
            f"starters-{index}-barrier": str(starter.barrier),
            f"starters-{index}-horse": str(starter.horse_id),
            f"starters-{index}-driver": str(starter.driver_id),
            f"starters-{index}-trainer": str(starter.trainer_id),
            f"starters-{index}-placing": "" if placing is None else str(placing),
            f"starters-{index}-did_not_finish": "on" if did_not_finish else "",
        })  # fmt: skip
    return data


async def test_placings_saved_in_the_admin_reach_connected_clients(admin_client):
    race = await factories.arace_create(starter_count=3)
    communicator = WebsocketCommunicator(application, f"/ws/races/{race.pk}")
    await communicator.connect()
    await communicator.receive_json_from()
    await communicator.send_json_to({"type": "subscribe", "race_id": race.pk})
    await communicator.receive_json_from()

    response = await sync_to_async(admin_client.post)(
        reverse("admin:races_race_change", args=[race.pk]),
        await database_sync_to_async(change_form)(race, [(2, False), (None, True), (1, False)]),
    )

    assert response.status_code == 302
    messages = [assert_valid(await communicator.receive_json_from()) for _ in range(3)]
    # A scheduled race declared official in the admin closes, goes official, then has its result.
    assert [(m["type"], m.get("status")) for m in messages] == [
        ("race_status", "closed"), ("race_status", "official"), ("result_update", None)
    ]  # fmt: skip
    result = messages[-1]
    horse_ids = await database_sync_to_async(
        lambda: list(race.starters.order_by("runner_number").values_list("horse_id", flat=True))
    )()
    assert result["results"] == [
        {"horse_id": horse_ids[2], "placing": 1, "finished": True},
        {"horse_id": horse_ids[0], "placing": 2, "finished": True},
        {"horse_id": horse_ids[1], "placing": None, "finished": False},
    ]
    stored = await database_sync_to_async(Race.objects.get)(pk=race.pk)
    assert stored.status == Race.Status.OFFICIAL
    await communicator.disconnect()


def test_saving_other_fields_broadcasts_nothing(admin_client):
    race = factories.race_create(starter_count=2)
    data = change_form(race, [(None, False), (None, False)])
    data["name"] = "Renamed Pace"

    response = admin_client.post(reverse("admin:races_race_change", args=[race.pk]), data)

    assert response.status_code == 302
    race.refresh_from_db()
    assert race.status == Race.Status.SCHEDULED and race.name == "Renamed Pace"


@pytest.mark.parametrize(
    "placings, message",
    [
        ([(1, False), (None, False), (2, False)], "needs every starter placed or marked did-not-finish"),
        ([(1, False), (3, False), (None, True)], "(1, 1, 3), not 1, 3"),
        ([(1, False), (2, True), (3, False)], "did not finish has no placing"),
    ],
)
def test_a_half_entered_or_inconsistent_result_is_refused_with_a_message(admin_client, placings, message):
    race = factories.race_create(starter_count=3)

    response = admin_client.post(reverse("admin:races_race_change", args=[race.pk]), change_form(race, placings))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not race.starters.filter(placing__isnull=False).exists()


def test_reset_clears_result_odds_and_the_feed_mark(admin_client):
    race = factories.race_create(starter_count=2)
    horse_ids = list(race.starters.values_list("horse_id", flat=True))
    odds_snapshot_record(race_id=race.pk, odds=[(horse_ids[0], 2.0)], source="feed", taken_at=race.race_datetime)
    race.starters.update(placing=1)
    Race.objects.filter(pk=race.pk).update(status=Race.Status.OFFICIAL)

    chosen = {"action": "race_day_reset", "_selected_action": [race.pk]}
    asked = admin_client.post(reverse("admin:races_race_changelist"), chosen)
    assert asked.status_code == 200 and Race.objects.get(pk=race.pk).status == Race.Status.OFFICIAL  # confirm first
    admin_client.post(reverse("admin:races_race_changelist"), {**chosen, "post": "yes"})

    race.refresh_from_db()
    assert (race.status, race.fed, race.result_declared_at) == (Race.Status.SCHEDULED, False, None)
    assert not OddsSnapshot.objects.filter(race=race).exists()
    assert not race.starters.filter(placing__isnull=False).exists()


async def test_start_simulation_runs_a_race_nobody_watches(async_client, settings):
    settings.SIMULATION_SPEEDUP = 1000
    settings.SIMULATION_HEARTBEAT_S = 0.02
    race = await factories.arace_create(starter_count=6)
    user = await database_sync_to_async(User.objects.create_superuser)("office", password="x")
    await async_client.aforce_login(user)

    response = await async_client.post(
        reverse("admin:races_race_changelist"), {"action": "start_simulation", "_selected_action": [race.pk]}
    )

    assert response.status_code == 302
    for _ in range(200):
        stored = await database_sync_to_async(Race.objects.get)(pk=race.pk)
        if stored.status == Race.Status.OFFICIAL:
            break
        await asyncio.sleep(0.02)
    assert stored.status == Race.Status.OFFICIAL
    assert 6 <= await database_sync_to_async(OddsSnapshot.objects.filter(race=race).count)() <= 12


def test_start_simulation_outside_the_asgi_server_says_so(admin_client):
    race = factories.race_create(starter_count=2)

    response = admin_client.post(
        reverse("admin:races_race_changelist"),
        {"action": "start_simulation", "_selected_action": [race.pk]},
        follow=True,
    )

    assert "only under the ASGI server" in response.content.decode()


def test_feed_tokens_are_managed_in_the_admin(admin_client):
    User.objects.create_user("tote-feed")

    page = admin_client.get(reverse("admin:authtoken_tokenproxy_add"))

    assert page.status_code == 200 and "tote-feed" in page.content.decode()
