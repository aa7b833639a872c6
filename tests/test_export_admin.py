"""The race list's export actions: staff who may view races download the chosen races' results or
odds history as one file; anyone else is refused."""

from __future__ import annotations

import pytest
from django.contrib.admin import helpers
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework import status

from tests import factories
from tests.exports import csv_rows, race_with_odds, race_with_result, xlsx_rows

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:races_race_changelist")


def act(client, action: str, *races, follow: bool = False):
    data = {"action": action, helpers.ACTION_CHECKBOX_NAME: [race.pk for race in races]}
    return client.post(CHANGELIST, data, follow=follow)


@pytest.fixture
def office_client(client, django_user_model):
    """A race office clerk: staff who may view races, and nothing more."""
    clerk = django_user_model.objects.create_user("clerk", password="not-a-secret", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_race"))
    client.force_login(clerk)
    return client


def test_staff_download_the_results_of_a_race_as_csv(office_client):
    race = race_with_result([1, 1, 3])

    response = act(office_client, "export_results_csv", race)

    assert response.status_code == status.HTTP_200_OK
    assert (
        response["Content-Disposition"] == f'attachment; filename="{race.meeting.code}_R{race.race_number}_results.csv"'
    )
    assert [row["placing"] for row in csv_rows(response)] == ["1", "1", "3"]


def test_the_results_of_a_meetings_races_come_in_one_file_and_races_without_one_are_left_out(office_client):
    meeting = factories.meeting_create()
    first, second = race_with_result([1, 2]), race_with_result([2, 1])
    first.meeting = second.meeting = meeting
    first.race_number, second.race_number = 1, 2
    first.save(), second.save()
    unraced = factories.race_create(meeting=meeting, starter_count=3)

    response = act(office_client, "export_results_xlsx", unraced, second, first)

    assert response["Content-Disposition"] == f'attachment; filename="{meeting.code}_results.xlsx"'
    rows = xlsx_rows(response)
    assert [(row["race_number"], row["runner_number"], row["placing"]) for row in rows] == [
        (1, 1, 1), (1, 2, 2), (2, 2, 1), (2, 1, 2),
    ]  # fmt: skip


def test_races_without_a_result_give_a_warning_not_an_empty_file(office_client):
    race = factories.race_create(starter_count=3)

    response = act(office_client, "export_results_csv", race, follow=True)

    assert response.redirect_chain and response["Content-Type"].startswith("text/html")
    assert "None of the chosen races has a result yet: nothing to export." in [
        str(message) for message in response.context["messages"]
    ]


@pytest.mark.parametrize("action, reader", [("export_odds_csv", csv_rows), ("export_odds_xlsx", xlsx_rows)])
def test_staff_download_a_races_odds_history(office_client, action, reader):
    race = race_with_odds([[2.5, 3.0], [2.1, 3.5]])

    response = act(office_client, action, race)

    assert response.status_code == status.HTTP_200_OK
    assert [float(row["odds"]) for row in reader(response)] == [2.5, 3.0, 2.1, 3.5]


def test_the_export_actions_are_offered_on_the_race_list(office_client):
    actions = office_client.get(CHANGELIST).context["action_form"].fields["action"].choices

    assert {
        ("export_results_csv", "Export results (CSV)"),
        ("export_results_xlsx", "Export results (XLSX)"),
        ("export_odds_csv", "Export odds history (CSV)"),
        ("export_odds_xlsx", "Export odds history (XLSX)"),
    } <= set(actions)


def test_an_anonymous_visitor_is_sent_to_log_in_and_gets_no_file(client):
    race = race_with_result([1, 2])

    response = act(client, "export_results_csv", race)

    assert response.status_code == status.HTTP_302_FOUND and "/admin/login/" in response["Location"]
    assert "Content-Disposition" not in response


def test_staff_who_may_not_view_races_get_no_file(client, django_user_model):
    race = race_with_result([1, 2])
    client.force_login(django_user_model.objects.create_user("porter", is_staff=True))

    response = act(client, "export_results_csv", race)

    assert response.status_code == status.HTTP_403_FORBIDDEN and "Content-Disposition" not in response


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_the_action_reads_as_many_queries_for_five_full_races_as_for_one_small_one(office_client, file_format):
    one = [race_with_result([1, 2])]
    many = [race_with_result([*range(1, 11), None]) for _ in range(5)]
    counts = []
    for races in (one, many):
        with CaptureQueriesContext(connection) as queries:
            assert act(office_client, f"export_results_{file_format}", *races).status_code == status.HTTP_200_OK
        counts.append(len(queries))

    assert counts[0] == counts[1]
