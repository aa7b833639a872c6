"""The race office enters a whole race card in the admin, without touching the shell."""

import pytest
from django.urls import reverse

from races.models import Driver, Horse, Meeting, Race, Trainer
from tests import factories

pytestmark = pytest.mark.django_db


def inline_management(prefix: str, total: int, initial: int = 0) -> dict[str, str]:
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def test_a_meeting_is_entered_with_its_races_inline(admin_client):
    response = admin_client.post(
        reverse("admin:races_meeting_add"),
        {
            "code": "NZ_20261211_ADD",
            "venue": "Addington",
            "date": "2026-12-11",
            **inline_management("races", 2),
            "races-0-race_number": "1",
            "races-0-name": "Woodlands Mobile Pace",
            "races-0-distance_m": "1980",
            "races-0-start_type": "mobile",
            "races-0-gait": "pace",
            "races-0-race_datetime_0": "2026-12-11",
            "races-0-race_datetime_1": "18:05:00",
            "races-1-race_number": "2",
            "races-1-name": "Garrards Trotters Handicap",
            "races-1-distance_m": "2600",
            "races-1-start_type": "standing",
            "races-1-gait": "trot",
            "races-1-race_datetime_0": "2026-12-11",
            "races-1-race_datetime_1": "18:35:00",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    meeting = Meeting.objects.get(code="NZ_20261211_ADD")
    assert list(meeting.races.values_list("race_number", "gait")) == [(1, "pace"), (2, "trot")]
    # Entered in New Zealand time: 18:05 NZDT is 05:05 UTC.
    assert meeting.races.get(race_number=1).race_datetime.isoformat() == "2026-12-11T05:05:00+00:00"


def test_a_race_gets_its_starters_inline(admin_client):
    race = factories.race_create(starter_count=0, start_type=Race.StartType.STANDING)
    horses = [Horse.objects.create(name=name) for name in ("Ripper Rita", "Sir Tasman")]
    driver = Driver.objects.create(name="Jo Harrow")
    trainer = Trainer.objects.create(name="Ken Lysaght")
    starters = {}
    for index, (horse, handicap_m) in enumerate(zip(horses, [0, 10], strict=False)):
        starters.update({
            f"starters-{index}-runner_number": str(index + 1),
            f"starters-{index}-barrier": str(index + 1),
            f"starters-{index}-handicap_m": str(handicap_m),
            f"starters-{index}-horse": str(horse.pk),
            f"starters-{index}-driver": str(driver.pk),
            f"starters-{index}-trainer": str(trainer.pk),
        })  # fmt: skip

    response = admin_client.post(
        reverse("admin:races_race_change", args=[race.pk]),
        {
            "meeting": str(race.meeting.pk),
            "race_number": str(race.race_number),
            "name": race.name,
            "distance_m": "2600",
            "gait": "trot",
            "start_type": "standing",
            **inline_management("starters", 2),
            **starters,
        },
    )

    assert response.status_code == 302
    assert list(race.starters.values_list("horse__name", "handicap_m")) == [
        ("Ripper Rita", 0),
        ("Sir Tasman", 10),
    ]


def test_a_duplicate_runner_number_is_refused_with_a_message(admin_client):
    race = factories.race_create(starter_count=1)
    horse = Horse.objects.create(name="Second Horse")

    response = admin_client.post(
        reverse("admin:races_race_change", args=[race.pk]),
        {
            "meeting": str(race.meeting.pk),
            "race_number": str(race.race_number),
            "distance_m": "1980",
            **inline_management("starters", 1),
            "starters-0-runner_number": "1",
            "starters-0-horse": str(horse.pk),
        },
    )

    assert response.status_code == 200
    assert "runner number" in response.content.decode().lower()
    assert race.starters.count() == 1


def test_horse_driver_and_trainer_are_chosen_by_autocomplete(admin_client):
    Horse.objects.create(name="Midnight Dazzler")
    race = factories.race_create(starter_count=1)

    page = admin_client.get(reverse("admin:races_race_change", args=[race.pk])).content.decode()
    found = admin_client.get(
        reverse("admin:autocomplete"),
        {"term": "Dazz", "app_label": "races", "model_name": "starter", "field_name": "horse"},
    ).json()

    for field in ("horse", "driver", "trainer"):
        assert f'name="starters-0-{field}"' in page and "admin-autocomplete" in page
    assert [item["text"] for item in found["results"]] == ["Midnight Dazzler"]


@pytest.mark.parametrize(
    "query",
    ["", "?gait__exact=trot", "?start_type__exact=standing", "?meeting__venue=Addington", "?q=Addington"],
)
def test_the_race_list_filters_and_searches(admin_client, query):
    factories.race_create(starter_count=3, gait=Race.Gait.TROT, start_type=Race.StartType.STANDING)

    response = admin_client.get(reverse("admin:races_race_changelist") + query)

    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


def test_the_race_list_costs_the_same_queries_for_one_race_or_ten(admin_client, django_assert_max_num_queries):
    factories.race_create(starter_count=2)
    admin_client.get(reverse("admin:races_race_changelist"))
    with django_assert_max_num_queries(12) as one_race:
        admin_client.get(reverse("admin:races_race_changelist"))
    for _ in range(9):
        factories.race_create(starter_count=5)

    with django_assert_max_num_queries(len(one_race)):
        admin_client.get(reverse("admin:races_race_changelist"))


@pytest.mark.parametrize(
    "url_name", ["races_meeting_changelist", "races_horse_changelist", "races_starter_changelist",
                 "races_driver_changelist", "races_trainer_changelist", "races_meeting_add"]
)  # fmt: skip
def test_every_admin_page_opens(admin_client, url_name):
    factories.race_create(starter_count=2)

    assert admin_client.get(reverse(f"admin:{url_name}")).status_code == 200
