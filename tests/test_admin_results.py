"""The race office enters placings on a race's page and chooses whether they are interim or
official; a declared result is corrected, never withdrawn; scratched starters take no placing."""

from __future__ import annotations

from unittest import mock

import pytest
from django.urls import reverse
from rest_framework import status as http

from races.admin import RaceAdmin
from races.models import Race, RaceStatusChange, RaceUpdate, Source, Starter
from races.services import Actor, race_status_change, starter_scratch
from tests import factories
from tests.test_admin_live import change_form

pytestmark = pytest.mark.django_db


def enter(client, race: Race, placings: list[tuple[int | None, bool]], **extra):
    """Save the race's page with these placings / DNF marks, in runner order; follow it."""
    data = {**change_form(race, placings), **extra}
    return client.post(reverse("admin:races_race_change", args=[race.pk]), data, follow=True)


def said(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def errors(response) -> str:
    return " ".join(str(error) for error in response.context["inline_admin_formsets"][0].formset.non_form_errors())


def placings_of(race: Race) -> list[int | None]:
    return list(race.starters.order_by("runner_number").values_list("placing", flat=True))


def logged(race: Race) -> list[str]:
    return list(RaceUpdate.objects.filter(race=race).order_by("seq").values_list("kind", flat=True))


def test_placings_entered_as_interim_are_sent_as_interim(admin_client):
    race = factories.race_at_status("closed", starter_count=3)

    response = enter(admin_client, race, [(2, False), (1, False), (None, True)], result_as="interim")

    assert "Interim placings declared and sent to the race's live clients." in said(response)
    race.refresh_from_db()
    assert race.status == "interim" and race.result_declared_at is None
    assert placings_of(race) == [2, 1, None]
    assert logged(race)[-2:] == ["status", "interim"]
    move = RaceStatusChange.objects.filter(race=race).latest("seq")
    assert (move.status, move.source, move.user.username) == ("interim", "admin", "admin")


def test_placings_entered_as_official_are_declared_official(admin_client):
    race = factories.race_at_status("closed", starter_count=3)

    response = enter(admin_client, race, [(1, False), (1, False), (3, False)], result_as="official")  # a dead heat

    assert "Official result declared and sent to the race's live clients." in said(response)
    race.refresh_from_db()
    assert race.status == "official" and race.result_declared_at is not None
    assert logged(race)[-2:] == ["status", "result"]
    assert RaceUpdate.objects.filter(race=race).latest("seq").data[:2] == [
        {"horse_id": h, "placing": 1, "finished": True}
        for h in race.starters.order_by("runner_number").values_list("horse_id", flat=True)[:2]
    ]


def test_a_protest_upheld_amends_the_interim_placings(admin_client):
    race = factories.race_at_status("protest", starter_count=3)

    enter(admin_client, race, [(2, False), (1, False), (3, False)], result_as="interim")

    assert Race.objects.get(pk=race.pk).status == "interim" and placings_of(race) == [2, 1, 3]


def test_an_official_result_changed_is_a_correction(admin_client):
    race = factories.race_at_status("official", starter_count=3)

    response = enter(admin_client, race, [(2, False), (1, False), (3, False)])

    assert "Official result corrected and sent to the race's live clients." in said(response)
    assert placings_of(race) == [2, 1, 3] and logged(race)[-1] == "result"


def test_an_official_result_is_not_made_interim_again(admin_client):
    race = factories.race_at_status("official", starter_count=3)
    page = admin_client.get(reverse("admin:races_race_change", args=[race.pk])).content.decode()

    response = enter(admin_client, race, [(2, False), (1, False), (3, False)], result_as="interim")

    assert 'value="interim"' not in page
    assert "An official result can be corrected, not made interim again." in response.content.decode()
    assert placings_of(race) == [1, 2, 3]


@pytest.mark.parametrize("status", ["interim", "protest", "official"])
def test_clearing_a_declared_result_is_refused_with_a_message_not_a_crash(admin_client, status):
    race = factories.race_at_status(status, starter_count=3)
    before = logged(race)

    response = enter(admin_client, race, [(None, False)] * 3)

    assert response.status_code == http.HTTP_200_OK
    assert f"The race's result is {status.capitalize()}: it can be corrected, not withdrawn." in errors(response)
    assert placings_of(race) == [1, 2, 3] and logged(race) == before


def test_the_same_placings_again_send_nothing(admin_client):
    race = factories.race_at_status("interim", starter_count=3)
    before = logged(race)
    data = change_form(race, [(1, False), (2, False), (3, False)])
    data["name"] = "Renamed"

    admin_client.post(reverse("admin:races_race_change", args=[race.pk]), data)

    assert logged(race) == before and Race.objects.get(pk=race.pk).name == "Renamed"


def test_scratched_starters_are_left_out_of_the_result_and_take_no_placing(admin_client):
    race = factories.race_at_status("scheduled", starter_count=4)
    scratched = race.starters.order_by("runner_number")[1]
    starter_scratch(race_id=race.pk, horse_id=scratched.horse_id, at=race.race_datetime, actor=Actor(Source.ADMIN))

    response = enter(admin_client, race, [(1, False), (4, False), (2, False), (3, False)])  # 4 for the scratched one

    assert "Official result declared and sent to the race's live clients." in said(response)
    assert placings_of(race) == [1, None, 2, 3]
    assert Starter.objects.get(pk=scratched.pk).placing is None
    assert scratched.horse_id not in {
        row["horse_id"] for row in RaceUpdate.objects.filter(race=race).latest("seq").data
    }


def test_a_result_needs_every_runner_but_not_the_scratched_ones(admin_client):
    race = factories.race_at_status("closed", starter_count=3)
    Starter.objects.filter(race=race, runner_number=3).update(scratched=True)  # as scratched before it closed

    response = enter(admin_client, race, [(1, False), (None, False), (None, False)])

    assert "A result needs every starter placed or marked did-not-finish: " in errors(response)
    assert "has neither" in errors(response) and race.starters.get(runner_number=3).horse.name not in errors(response)


def test_an_abandoned_race_takes_no_placings(admin_client):
    race = factories.race_at_status("abandoned", starter_count=3)

    page = admin_client.get(reverse("admin:races_race_change", args=[race.pk])).content.decode()
    enter(admin_client, race, [(1, False), (2, False), (3, False)])

    assert 'name="starters-0-placing"' not in page
    assert placings_of(race) == [None, None, None] and Race.objects.get(pk=race.pk).status == "abandoned"


def test_saving_the_race_page_never_writes_back_a_status_or_numbering_it_read_earlier(admin_client):
    race = factories.race_at_status("scheduled", starter_count=2)
    stale = Race.objects.get(pk=race.pk)  # as the page read it, before a feed opened the market
    race_status_change(race_id=race.pk, status="open", at=race.race_datetime, actor=Actor(Source.FEED))
    data = change_form(race, [(None, False)] * 2)
    data["name"] = "Renamed"

    with mock.patch.object(RaceAdmin, "get_object", return_value=stale):
        admin_client.post(reverse("admin:races_race_change", args=[race.pk]), data)

    race.refresh_from_db()
    assert (race.name, race.status, race.update_seq) == ("Renamed", "open", 1)
