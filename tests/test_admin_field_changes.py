"""The race office changes a race's field in the admin: scratchings (late ones marked), reinstatements
and new drivers, each confirmed and made through races.services; the starters inline and a
starter's own page cannot change them behind the services' back."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework import status as http

from races.models import Driver, Horse, Race, RaceUpdate, Starter, StarterChange
from tests import factories
from tests.test_admin_live import change_form

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:races_starter_changelist")


def confirm(client, move: str, starters: list[Starter], **data):
    return client.post(
        CHANGELIST,
        {"action": f"race_day_{move}", "_selected_action": [s.pk for s in starters], "post": "yes", **data},
        follow=True,
    )


def said(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def starters_of(race: Race) -> list[Starter]:
    return list(race.starters.select_related("horse", "driver").order_by("runner_number"))


def stored(starter: Starter) -> Starter:
    return Starter.objects.select_related("driver").get(pk=starter.pk)


# --- Scratchings --------------------------------------------------------------------------------


def test_a_scratching_is_confirmed_then_made_and_recorded_with_the_office_user(admin_client):
    starter = starters_of(factories.race_at_status("scheduled"))[0]

    asked = admin_client.post(CHANGELIST, {"action": "race_day_scratch", "_selected_action": [starter.pk]})
    assert asked.status_code == http.HTTP_200_OK and not stored(starter).scratched
    response = confirm(admin_client, "scratch", [starter])

    assert said(response) == [f"Scratched: {starter}."]
    assert (stored(starter).scratched, stored(starter).scratched_late) == (True, False)
    change = StarterChange.objects.get(starter=starter)
    assert (change.change, change.source, change.user.username) == ("scratched", "admin", "admin")


def test_a_scratching_once_the_market_is_up_is_late_and_shown_so(admin_client):
    starter = starters_of(factories.race_at_status("open"))[1]

    page = admin_client.post(CHANGELIST, {"action": "race_day_scratch", "_selected_action": [starter.pk]})
    confirm(admin_client, "scratch", [starter])

    assert "a late scratching (the market is up)" in page.content.decode()
    assert stored(starter).scratched_late
    listed = admin_client.get(CHANGELIST, {"scratched_late__exact": "1"})
    assert [s.pk for s in listed.context["cl"].result_list] == [starter.pk]
    assert '<td class="field-scratching">SCR late</td>' in listed.content.decode()


def test_scratchings_refused_for_some_starters_still_go_through_for_the_others(admin_client):
    open_race, closed_race = factories.race_at_status("open"), factories.race_at_status("closed")
    runner, already, racing = starters_of(open_race)[0], starters_of(open_race)[1], starters_of(closed_race)[0]
    confirm(admin_client, "scratch", [already])

    response = confirm(admin_client, "scratch", [runner, already, racing])

    assert said(response) == [
        f"{racing} not changed: race {closed_race.pk} is closed: too late to scratch a starter.",
        f"Scratched: {runner}.",
        f"Nothing to change for {already}: already so.",
    ]
    assert [stored(s).scratched for s in (runner, already, racing)] == [True, True, False]


def test_a_races_last_runner_cannot_be_scratched(admin_client):
    first, last = starters_of(factories.race_at_status("scheduled", starter_count=2))

    confirm(admin_client, "scratch", [first])
    response = confirm(admin_client, "scratch", [last])

    assert "last runner: abandon the race instead" in said(response)[0]
    assert not stored(last).scratched


def test_a_scratching_is_undone_only_before_the_market_opens(admin_client):
    race = factories.race_at_status("scheduled")
    starter = starters_of(race)[0]
    confirm(admin_client, "scratch", [starter])

    reinstated = confirm(admin_client, "reinstate", [starter])
    confirm(admin_client, "scratch", [starter])
    Race.objects.filter(pk=race.pk).update(status=Race.Status.OPEN)
    page = admin_client.post(CHANGELIST, {"action": "race_day_reinstate", "_selected_action": [starter.pk]})
    refused = confirm(admin_client, "reinstate", [starter])

    assert said(reinstated) == [f"Reinstated: {starter}."]
    assert "a scratching stands once the market is up: the race is Open" in page.content.decode()
    assert said(refused) == [
        f"{starter} not changed: race {race.pk} is open: a scratching stands once the market is up."
    ]
    assert stored(starter).scratched


# --- Driver changes -----------------------------------------------------------------------------


def test_a_new_driver_by_name_is_found_whatever_the_spacing_and_case(admin_client):
    known = Driver.objects.create(name="Blair Orange")
    starter = starters_of(factories.race_at_status("open"))[0]
    before = starter.driver

    response = confirm(admin_client, "driver", [starter], driver_name="  blair   ORANGE ")

    assert said(response) == [f"Driver changed: {starter}."]
    assert stored(starter).driver == known
    change = StarterChange.objects.get(starter=starter)
    assert (change.change, change.driver_before, change.driver_after, change.user.username) == (
        "driver_changed", before, known, "admin"
    )  # fmt: skip


def test_a_new_driver_not_yet_known_is_added(admin_client):
    starter = starters_of(factories.race_at_status("scheduled"))[0]

    confirm(admin_client, "driver", [starter], driver_name="Zachary Butcher")

    assert stored(starter).driver.name == "Zachary Butcher"


def test_a_new_driver_is_chosen_by_autocomplete(admin_client):
    chosen = Driver.objects.create(name="Natalie Rasmussen")
    starter = starters_of(factories.race_at_status("open"))[0]

    page = admin_client.post(CHANGELIST, {"action": "race_day_driver", "_selected_action": [starter.pk]})
    found = admin_client.get(
        reverse("admin:autocomplete"),
        {"term": "Rasm", "app_label": "races", "model_name": "starter", "field_name": "driver"},
    ).json()
    confirm(admin_client, "driver", [starter], driver=str(chosen.pk))

    assert "admin-autocomplete" in page.content.decode()
    assert [item["text"] for item in found["results"]] == ["Natalie Rasmussen"]
    assert stored(starter).driver == chosen


@pytest.mark.parametrize(
    "data, problem",
    [
        ({"driver_name": "   "}, "Choose the new driver or type their name, one of them."),
        ({}, "Choose the new driver or type their name, one of them."),
        ({"driver_name": "x" * 101}, "Ensure this value has at most 100 characters"),
        ({"driver": "999999"}, "Select a valid choice."),
        ({"driver": "abc"}, "Select a valid choice."),
        ({"driver": "99999999999999999999"}, "Select a valid choice."),
        ({"driver": "²"}, "Select a valid choice."),
    ],
)
def test_a_driver_change_that_names_no_driver_is_refused_on_the_form(admin_client, data, problem):
    starter = starters_of(factories.race_at_status("open"))[0]

    response = admin_client.post(
        CHANGELIST, {"action": "race_day_driver", "_selected_action": [starter.pk], "post": "yes", **data}
    )

    assert response.status_code == http.HTTP_200_OK
    assert problem in response.content.decode()
    assert stored(starter).driver_id == starter.driver_id


def test_both_a_driver_and_a_name_is_refused(admin_client):
    starter = starters_of(factories.race_at_status("open"))[0]
    other = Driver.objects.create(name="Other Driver")

    response = admin_client.post(
        CHANGELIST,
        {"action": "race_day_driver", "_selected_action": [starter.pk], "post": "yes", "driver": other.pk,
         "driver_name": "Someone Else"},
    )  # fmt: skip

    assert "one of them" in response.content.decode()
    assert stored(starter).driver_id == starter.driver_id


def test_a_driver_is_changed_for_one_starter_at_a_time(admin_client):
    starters = starters_of(factories.race_at_status("open"))[:2]

    response = admin_client.post(
        CHANGELIST,
        {
            "action": "race_day_driver",
            "_selected_action": [s.pk for s in starters],
            "post": "yes",
            "driver_name": "A B",
        },
    )

    assert "Change the driver of one starter at a time." in response.content.decode()
    assert not Driver.objects.filter(name="A B").exists()


@pytest.mark.parametrize("status", ["closed", "official", "abandoned"])
def test_a_driver_is_not_changed_once_they_are_racing(admin_client, status):
    race = factories.race_at_status(status)
    starter = starters_of(race)[0]

    response = confirm(admin_client, "driver", [starter], driver_name="Late Sub")

    assert said(response) == [f"{starter} not changed: race {race.pk} is {status}: too late to change a driver."]
    assert stored(starter).driver_id == starter.driver_id


def test_a_scratched_starter_has_no_driver_to_change(admin_client):
    starter = starters_of(factories.race_at_status("scheduled"))[0]
    confirm(admin_client, "scratch", [starter])

    response = confirm(admin_client, "driver", [starter], driver_name="Late Sub")

    assert "it has no driver to change" in said(response)[0]


# --- The race's page: the starters inline -------------------------------------------------------


def race_page(client, race: Race) -> str:
    return client.get(reverse("admin:races_race_change", args=[race.pk])).content.decode()


def starter_link(starter: Starter, move: str) -> str:
    return reverse("admin:races_starter_race_day", args=[starter.pk, move])


def test_each_starter_row_links_to_the_changes_the_race_takes(admin_client):
    race = factories.race_at_status("scheduled")
    running, scratched = starters_of(race)[:2]
    confirm(admin_client, "scratch", [scratched])

    page = race_page(admin_client, race)

    assert starter_link(running, "scratch") in page and starter_link(running, "driver") in page
    assert starter_link(scratched, "reinstate") in page and starter_link(scratched, "scratch") not in page
    assert "<strong>SCR</strong>" in page


def test_a_late_scratching_shows_on_the_races_page_and_cannot_be_undone_there(admin_client):
    race = factories.race_at_status("open")
    starter = starters_of(race)[0]
    confirm(admin_client, "scratch", [starter])

    page = race_page(admin_client, race)

    assert "<strong>SCR late</strong>" in page and starter_link(starter, "reinstate") not in page


def test_a_closed_race_offers_no_field_changes(admin_client):
    race = factories.race_at_status("closed")

    page = race_page(admin_client, race)

    assert "/race-day/scratch/" not in page and "/race-day/driver/" not in page


def test_a_starters_own_move_page_confirms_then_goes_back_to_the_race(admin_client):
    race = factories.race_at_status("open")
    starter = starters_of(race)[0]
    url = starter_link(starter, "driver")

    asked = admin_client.get(url)
    done = admin_client.post(url, {"post": "yes", "driver_name": "Blair Orange"})

    assert "Give this starter a new driver?" in asked.content.decode()
    assert done.status_code == http.HTTP_302_FOUND and done.url == reverse("admin:races_race_change", args=[race.pk])
    assert stored(starter).driver.name == "Blair Orange"


@pytest.mark.parametrize("object_id", ["abc", "0", "999999", "99999999999999999999"])
def test_a_starters_move_page_for_no_starter_redirects_with_a_message(admin_client, object_id):
    response = admin_client.post(f"/admin/races/starter/{object_id}/race-day/scratch/", {"post": "yes"}, follow=True)

    assert response.status_code == http.HTTP_200_OK
    assert said(response) == [f"There is no starter “{object_id}”."]


def test_the_inline_cannot_scratch_a_starter(admin_client):
    race = factories.race_at_status("scheduled")
    data = change_form(race, [(None, False)] * 4)
    data["starters-0-scratched"] = "on"

    response = admin_client.post(reverse("admin:races_race_change", args=[race.pk]), data)

    assert response.status_code == http.HTTP_302_FOUND
    assert not race.starters.filter(scratched=True).exists()


def test_a_driver_edited_in_the_inline_is_a_driver_change_sent_to_clients(admin_client):
    race = factories.race_at_status("open")
    starter = starters_of(race)[2]
    new = Driver.objects.create(name="Inline Driver")
    data = change_form(race, [(None, False)] * 4)
    data["starters-2-driver"] = str(new.pk)

    response = admin_client.post(reverse("admin:races_race_change", args=[race.pk]), data, follow=True)

    assert "New driver Inline Driver sent to the race's live clients." in said(response)
    assert stored(starter).driver == new
    change = StarterChange.objects.get(starter=starter)
    assert (change.change, change.source, change.user.username) == ("driver_changed", "admin", "admin")
    assert RaceUpdate.objects.filter(race=race).latest("seq").kind == "starter"


def test_a_driver_is_not_removed_in_the_inline(admin_client):
    race = factories.race_at_status("scheduled")
    data = change_form(race, [(None, False)] * 4)
    data["starters-0-driver"] = ""

    response = admin_client.post(reverse("admin:races_race_change", args=[race.pk]), data)

    assert response.status_code == http.HTTP_200_OK
    assert "a driver is changed for another, not removed" in response.content.decode()
    assert not race.starters.filter(driver__isnull=True).exists()


def test_once_the_market_is_up_the_draw_is_fixed_in_the_inline(admin_client):
    race = factories.race_at_status("open")
    data = change_form(race, [(None, False)] * 4)
    data["starters-0-barrier"] = "9"
    data["starters-0-horse"] = str(Horse.objects.create(name="Ring In").pk)

    shown = admin_client.get(reverse("admin:races_race_change", args=[race.pk]))
    response = admin_client.post(reverse("admin:races_race_change", args=[race.pk]), data)

    page, inline = shown.content.decode(), shown.context["inline_admin_formsets"][0]
    assert 'name="starters-0-barrier"' not in page and 'name="starters-0-horse"' not in page
    assert 'name="starters-0-driver"' in page
    assert not inline.has_add_permission and not inline.has_delete_permission
    assert response.status_code == http.HTTP_302_FOUND
    assert starters_of(race)[0].barrier == 1 and starters_of(race)[0].horse.name != "Ring In"


def test_once_they_are_racing_the_driver_is_fixed_in_the_inline(admin_client):
    race = factories.race_at_status("closed")

    page = race_page(admin_client, race)

    assert 'name="starters-0-driver"' not in page


def test_a_scratched_starters_row_takes_no_driver(admin_client):
    race = factories.race_at_status("scheduled")
    starter = starters_of(race)[0]
    confirm(admin_client, "scratch", [starter])
    data = change_form(race, [(None, False)] * 4)
    data["starters-0-driver"] = str(Driver.objects.create(name="Ignored").pk)

    response = admin_client.post(reverse("admin:races_race_change", args=[race.pk]), data)

    assert response.status_code == http.HTTP_302_FOUND
    assert stored(starter).driver_id == starter.driver_id


# --- A starter's own page -----------------------------------------------------------------------


def test_a_starters_page_shows_its_scratching_and_result_but_does_not_edit_them(admin_client):
    race = factories.race_at_status("open")
    starter = starters_of(race)[0]
    confirm(admin_client, "scratch", [starter])

    page = admin_client.get(reverse("admin:races_starter_change", args=[starter.pk])).content.decode()

    for name in ("scratched", "scratched_late", "placing", "did_not_finish", "driver", "race", "horse", "barrier"):
        assert f'name="{name}"' not in page
    assert "SCR late" in page


def test_a_starter_is_added_on_its_own_page_only_before_the_market_opens(admin_client):
    race = factories.race_at_status("open", starter_count=2)
    horse = Horse.objects.create(name="Late Entry")

    response = admin_client.post(
        reverse("admin:races_starter_add"), {"race": race.pk, "horse": horse.pk, "runner_number": "3"}
    )

    assert response.status_code == http.HTTP_200_OK
    assert "Starters are drawn before the market opens" in response.content.decode()
    assert race.starters.count() == 2


@pytest.mark.parametrize("field", ["horse", "driver", "trainer"])
@pytest.mark.parametrize("value", ["abc", "99999999999999999999", "²"])
def test_a_starter_row_naming_no_id_is_a_form_error_not_a_server_error(admin_client, field, value):
    race = factories.race_at_status("scheduled")
    data = change_form(race, [(None, False)] * 4)
    data[f"starters-0-{field}"] = value

    response = admin_client.post(reverse("admin:races_race_change", args=[race.pk]), data)

    assert response.status_code == http.HTTP_200_OK
    assert "Select a valid choice" in response.content.decode()
