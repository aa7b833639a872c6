"""The race office runs a race's day in the admin of a real Daphne, through the pages a browser
gets (logging in, each move's confirmation page, the race's change form with its placings), while
a client of the race watches: each step arrives once, in order, with consecutive seqs."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import urllib.parse
import urllib.request
from html.parser import HTMLParser

import pytest

from tests.servers import DaphneServer, start_daphne
from tests.spec import assert_valid
from tests.wsclient import race_socket

COPY_OF_RACE = 11  # a fixture race with a full field
PASSWORD = "race-office-e2e-password"  # noqa: S105 - a throwaway user of a test database


class FormReader(HTMLParser):
    """The fields of one <form> of a page, with the values a browser would submit unchanged."""

    def __init__(self, form_id: str | None) -> None:
        super().__init__()
        self.form_id, self.inside, self.fields = form_id, False, {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form" and (self.form_id is None or attributes.get("id") == self.form_id):
            self.inside = True
        if not self.inside or not attributes.get("name"):
            if tag == "option" and self._select and "selected" in attributes:
                self.fields[self._select] = attributes.get("value") or ""
            return
        name = attributes["name"]
        if tag == "input":
            kind = attributes.get("type", "text")
            if kind in ("submit", "button", "file"):
                return
            if kind == "checkbox" and "checked" not in attributes:
                return
            self.fields[name] = attributes.get("value") or ("on" if kind == "checkbox" else "")
        elif tag == "select":
            self._select = name
            self.fields.setdefault(name, "")
        elif tag == "textarea":
            self._textarea = name
            self.fields[name] = ""

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.fields[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "form" and self.inside:
            self.inside = False


class OfficeBrowser:
    """A race office's browser: cookies, CSRF tokens taken from each page, forms posted back."""

    def __init__(self, server: DaphneServer) -> None:
        self.server = server
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> str:
        with self.opener.open(self.server.http_url(path), timeout=15) as response:
            return response.read().decode()

    def form(self, path: str, form_id: str | None = None) -> dict[str, str]:
        reader = FormReader(form_id)
        reader.feed(self.get(path))
        assert reader.fields, f"no form on {path}"
        return reader.fields

    def post(self, path: str, fields: dict[str, str]) -> tuple[int, str]:
        """Post the form back as a browser does; return the status and the page it lands on."""
        request = urllib.request.Request(
            self.server.http_url(path),
            data=urllib.parse.urlencode(fields).encode(),
            headers={"Referer": self.server.http_url(path)},
        )
        with self.opener.open(request, timeout=15) as response:
            return response.status, response.read().decode()

    def log_in(self, username: str) -> None:
        fields = self.form("/admin/login/")
        status, page = self.post("/admin/login/", {**fields, "username": username, "password": PASSWORD})
        assert status == 200 and "Log out" in page, "the office could not log in"

    def race_move(self, race_id: int, move: str, **fields: str) -> str:
        return self._confirm(f"/admin/races/race/{race_id}/race-day/{move}/", fields)

    def starter_move(self, starter_id: int, move: str, **fields: str) -> str:
        return self._confirm(f"/admin/races/starter/{starter_id}/race-day/{move}/", fields)

    def _confirm(self, path: str, fields: dict[str, str]) -> str:
        """Open a move's confirmation page and say yes; return the page it lands on."""
        confirmation = self.form(path, None)
        return self.post(path, {**confirmation, **fields, "post": "yes"})[1]


@pytest.fixture(scope="module")
def office_server(server_database, tmp_path_factory):
    """A server of its own, its simulation off: only the office changes its races."""
    server = start_daphne(server_database, log_dir=tmp_path_factory.mktemp("office"), SIMULATION_ENABLED="0")
    server_database.shell(
        "from django.contrib.auth.models import User\n"
        "User.objects.filter(username='office-e2e').delete()\n"
        f"User.objects.create_superuser('office-e2e', 'office@example.com', {PASSWORD!r})\n"
        "print('created')\n"
    )
    yield server
    server.stop()


def starters_of(server_database, race_id: int) -> list[tuple[int, int]]:
    """Return (starter id, horse id) of the race's starters in runner-number order."""
    script = (
        "import json\nfrom races.models import Starter\n"
        f"print(json.dumps(list(Starter.objects.filter(race_id={race_id}).order_by('runner_number')"
        ".values_list('pk', 'horse_id'))))\n"
    )
    return [tuple(pair) for pair in json.loads(server_database.shell(script))]


def with_placings(fields: dict[str, str], placings: dict[int, int | None]) -> dict[str, str]:
    """The race's change form with a placing (or did-not-finish) entered for each runner by starter id."""
    entered = dict(fields)
    for name, value in fields.items():
        if name.startswith("starters-") and name.endswith("-id") and value and int(value) in placings:
            prefix = name.removesuffix("-id")
            placing = placings[int(value)]
            entered[f"{prefix}-placing"] = "" if placing is None else str(placing)
            if placing is None:
                entered[f"{prefix}-did_not_finish"] = "on"
    return entered


async def test_the_office_runs_a_race_day_in_the_admin_and_a_client_sees_each_step_in_order(
    office_server, server_database
):
    race_id = await asyncio.to_thread(server_database.race_of_its_own, copy_of=COPY_OF_RACE)
    starters = await asyncio.to_thread(starters_of, server_database, race_id)
    office = OfficeBrowser(office_server)
    await asyncio.to_thread(office.log_in, "office-e2e")
    (first, first_horse), (second, second_horse), (third, _), *_, (late, _), (early, _) = starters

    async def in_the_admin(function, *args, **fields) -> str:
        return await asyncio.to_thread(function, *args, **fields)

    async with race_socket(office_server.ws_url(f"/ws/races/{race_id}")) as (ws, initial, _):
        assert initial["data"]["race"]["status"] == "scheduled"
        await in_the_admin(office.starter_move, early, "scratch")
        await in_the_admin(office.race_move, race_id, "open")
        await in_the_admin(office.starter_move, first, "driver", driver_name="Blair Orange")
        # A copied race has no start time to put back by minutes: the office gives it one.
        await in_the_admin(
            office.race_move, race_id, "delay",
            race_datetime_0="2026-12-04", race_datetime_1="19:45:00", reason="Ambulance on track",
        )  # fmt: skip
        await in_the_admin(office.starter_move, late, "scratch")  # late: the market is up
        await in_the_admin(office.race_move, race_id, "close")
        refused = await in_the_admin(office.race_move, race_id, "open")  # too late: nothing is sent
        change = f"/admin/races/race/{race_id}/change/"
        form = await asyncio.to_thread(office.form, change, "race_form")
        runners = [starter for starter, _ in starters if starter not in (late, early)]
        dead_heat = {starter: 1 + (n > 1) * n for n, starter in enumerate(runners)}  # 1, 1, 3, ...
        status, _ = await asyncio.to_thread(
            office.post, change, {**with_placings(form, dead_heat), "result_as": "interim"}
        )
        await in_the_admin(office.race_move, race_id, "protest", reason="No. 2 against No. 1")
        await in_the_admin(office.race_move, race_id, "official")

        received = []
        while not received or received[-1]["type"] != "result_update":
            received.append(assert_valid(json.loads(await asyncio.wait_for(ws.recv(), 10))))

    assert status == 200  # the form was taken: the interim placings below are what it declared
    assert "not changed: it is Closed — racing, and can only become Interim, Official or Abandoned" in refused
    assert [(m["type"], m.get("status") or m.get("change")) for m in received] == [
        ("starter_update", "scratched"),
        ("race_status", "open"),
        ("starter_update", "driver_changed"),
        ("race_status", "open"),  # the delay
        ("starter_update", "scratched"),
        ("race_status", "closed"),
        ("race_status", "interim"),
        ("interim_result", None),
        ("race_status", "protest"),
        ("race_status", "official"),
        ("result_update", None),
    ]
    assert [m["seq"] for m in received] == list(range(1, len(received) + 1))
    assert received[2]["starter"]["driver_name"] == "Blair Orange"
    assert received[3]["reason"] == "Ambulance on track" and received[8]["reason"] == "No. 2 against No. 1"
    assert [(r["horse_id"], r["placing"]) for r in received[-1]["results"][:3]] == [
        (first_horse, 1),
        (second_horse, 1),
        (dict(starters)[third], 3),
    ]  # the dead heat, as the office entered it, official once the protest was dismissed
