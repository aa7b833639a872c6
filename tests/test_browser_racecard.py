"""The race office imports a race card in the admin of a real Daphne, in a real Chromium, on a
desktop and on a 390 px phone: the preview of what the file will change (or of each bad row and
why), then the confirmation. A screenshot of each is saved in test-output/browser/."""

from __future__ import annotations

import contextlib

import pytest

from tests.browser import (
    DESKTOP,
    PHONES,
    SHOWN_WITHIN_MS,
    PageProblems,
    assert_inside_the_screen,
    browser_tab,
    chromium_launched,
    screenshot_path,
)
from tests.racecard import csv_of, race_rows
from tests.servers import start_daphne

pytestmark = pytest.mark.e2e

PASSWORD = "race-office-browser-password"  # noqa: S105 - a throwaway user of a test database
CODE = "NZ_20270601_TST"  # a meeting of this module's own, deleted at its end


@pytest.fixture(scope="module")
def chromium():
    with chromium_launched() as browser:
        yield browser


@pytest.fixture(scope="module")
def office_server(server_database, tmp_path_factory):
    server = start_daphne(server_database, log_dir=tmp_path_factory.mktemp("racecard"), SIMULATION_ENABLED="0")
    server_database.shell(
        "from django.contrib.auth.models import User\n"
        "User.objects.filter(username='racecard-office').delete()\n"
        f"User.objects.create_superuser('racecard-office', 'office@example.com', {PASSWORD!r})\n"
        "print('created')\n"
    )
    yield server
    server.stop()
    server_database.shell(
        f"from races.models import Meeting\nMeeting.objects.filter(code={CODE!r}).delete()\nprint('ok')"
    )


@pytest.fixture
def open_tab(chromium, request):
    with contextlib.ExitStack() as tabs:

        def open_(viewport: dict, name: str):
            return tabs.enter_context(
                browser_tab(chromium, viewport=viewport, name=f"{request.node.name}-{name}", problems=PageProblems())
            )

        yield open_


def card(*, driver: str | None = None) -> bytes:
    """A race of the fixture day's horses and drivers, at a meeting of this module's own."""
    rows = race_rows()
    for row in rows:
        row.update(meeting_code=CODE, date="2027-06-01", venue="Test Park", start_time="2027-06-01T13:00:00+12:00")
    if driver:
        rows[0]["driver"] = driver
    return csv_of(rows)


def logged_in(page, server) -> None:
    page.goto(server.http_url("/admin/login/?next=/admin/races/meeting/"))
    page.fill("#id_username", "racecard-office")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#changelist", timeout=SHOWN_WITHIN_MS)


def preview(page, name: str, content: bytes) -> None:
    page.click("text=Import race card")
    page.set_input_files("#id_file", files=[{"name": name, "mimeType": "text/csv", "buffer": content}])
    page.click("#racecard-upload input[type=submit]")
    page.wait_for_selector("#racecard-preview", timeout=SHOWN_WITHIN_MS)


def test_the_office_previews_a_race_card_then_confirms_it(open_tab, office_server):
    rows = len(race_rows())
    for width, viewport, driver, expected in [
        ("desktop", DESKTOP, None, f"If you confirm: {rows} created, 0 updated, 0 unchanged, 0 removed."),
        ("390", PHONES["390"], race_rows()[1]["driver"], f"If you confirm: 0 created, 1 updated, {rows - 1} unchanged, 0 removed."),
    ]:  # fmt: skip
        page = open_tab(viewport, width)
        logged_in(page, office_server)

        preview(page, "racecard.csv", card(driver=driver))

        assert page.locator("#racecard-preview").get_attribute("data-state") == "ready"
        assert page.locator("#racecard-summary").inner_text() == expected
        assert_inside_the_screen(page, "#racecard-confirm input[type=submit]")
        page.screenshot(path=screenshot_path(f"racecard-preview-{width}"), full_page=True)

        page.click("#racecard-confirm input[name=confirm]")
        page.wait_for_selector("ul.messagelist li.success", timeout=SHOWN_WITHIN_MS)

        assert "imported: " in page.locator("ul.messagelist").inner_text()
        assert page.locator("#result_list", has_text="Test Park").count() == 1
        page.screenshot(path=screenshot_path(f"racecard-confirmed-{width}"), full_page=True)


def test_a_bad_file_shows_each_row_and_why_and_cannot_be_confirmed(open_tab, office_server):
    content = card().replace(b",trot,", b",gallop,", 1)
    for width, viewport in [("desktop", DESKTOP), ("390", PHONES["390"])]:
        page = open_tab(viewport, width)
        logged_in(page, office_server)

        preview(page, "racecard.csv", content)

        assert page.locator("#racecard-preview").get_attribute("data-state") == "refused"
        assert page.locator("#racecard-errors tbody tr").first.inner_text().split("\t") == [
            "2", "gait", "unknown gait 'gallop': use one of pace, trot",
        ]  # fmt: skip
        assert page.locator("#racecard-confirm").count() == 0
        assert_inside_the_screen(page, "#racecard-upload input[type=submit]")
        page.screenshot(path=screenshot_path(f"racecard-refused-{width}"), full_page=True)
