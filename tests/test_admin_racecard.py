"""The race card in the meetings' admin: upload a file, see what it will change (or each bad row
and why) with nothing saved, confirm it; export meetings' cards as CSV or XLSX."""

from __future__ import annotations

import io
import re

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from races.models import Meeting, Starter, StarterChange
from races.racecard.formats import MAX_FILE_BYTES
from tests.racecard import EXAMPLE, csv_of, race_rows

pytestmark = pytest.mark.django_db
IMPORT = "admin:races_meeting_racecard_import"


def upload(client, name: str, content: bytes):
    return client.post(reverse(IMPORT), {"file": SimpleUploadedFile(name, content)})


def confirm(client, preview) -> object:
    html = preview.content.decode()
    token = re.search(r'name="token" value="([^"]+)"', html).group(1)
    return client.post(reverse(IMPORT), {"token": token, "file_name": "card.csv", "confirm": "Confirm import"})


def test_the_meetings_list_offers_the_import(admin_client):
    page = admin_client.get(reverse("admin:races_meeting_changelist"))

    assert reverse(IMPORT).encode() in page.content and b"Import race card" in page.content


def test_the_preview_lists_the_changes_and_saves_nothing_until_confirmed(admin_client):
    preview = upload(admin_client, "racecard.csv", EXAMPLE.read_bytes())

    assert preview.status_code == 200
    assert "If you confirm: 203 created, 0 updated, 0 unchanged, 0 removed." in preview.content.decode()
    assert b"NZ_20261204_ADD: new meeting at Addington on 2026-12-04" in preview.content
    assert not Meeting.objects.exists()

    done = confirm(admin_client, preview)

    assert done.status_code == 302 and done["Location"] == reverse("admin:races_meeting_changelist")
    assert Starter.objects.count() == 203
    listed = admin_client.get(done["Location"]).content.decode()
    assert "imported: 203 created, 0 updated, 0 unchanged, 0 removed, 0 refused." in listed


def test_a_bad_file_shows_each_bad_row_and_why_and_offers_no_confirmation(admin_client):
    rows = race_rows()
    rows[0]["gait"] = "gallop"
    rows[2]["runner_number"] = rows[1]["runner_number"]

    preview = upload(admin_client, "card.csv", csv_of(rows))

    html = preview.content.decode()
    assert "This file is refused and nothing was changed: fix the 2 rows below" in html
    assert "<td>2</td><td>gait</td><td>unknown gait &#x27;gallop&#x27;: use one of pace, trot</td>" in html
    assert "<td>4</td><td>runner_number</td>" in html
    assert 'id="racecard-confirm"' not in html and 'id="racecard-upload"' in html
    assert not Meeting.objects.exists()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "card.xlsx",
            b"meeting_code,date\r\n",
            "the file is not an XLSX workbook (BadZipFile): save it from Excel as .xlsx",
        ),
        ("card.csv", "é".encode("latin-1"), "the file is not UTF-8 text (byte 0xE9 on line 1)"),
        ("card.csv", b"x" * (MAX_FILE_BYTES + 1), "a race card file may be at most 5 MB"),
        ("card.pdf", b"%PDF", "&#x27;card.pdf&#x27; is not a .csv, .xlsx or .json file"),
    ],
    ids=["not xlsx", "latin-1", "too big", "not a card"],
)
def test_a_file_that_cannot_be_read_is_refused_on_the_page(admin_client, name, content, message):
    preview = upload(admin_client, name, content)

    assert preview.status_code == 200
    assert message in preview.content.decode()


def test_a_confirmation_is_made_once(admin_client):
    preview = upload(admin_client, "racecard.csv", csv_of(race_rows()))
    confirm(admin_client, preview)

    again = confirm(admin_client, preview)

    assert "the previewed file is gone (imported already, or too old): upload it again" in again.content.decode()


def test_a_forged_token_reads_no_file(admin_client):
    page = admin_client.post(reverse(IMPORT), {"token": "../../etc/passwd", "confirm": "Confirm import"})

    assert "the previewed file is unknown: upload it again" in page.content.decode()


def test_late_changes_confirmed_in_the_admin_are_the_office_users(admin_client, admin_user):
    from races.models import Race
    from races.services import Actor, race_status_change

    rows = race_rows()
    confirm(admin_client, upload(admin_client, "card.csv", csv_of(rows)))
    race_status_change(
        race_id=Race.objects.get().pk, status="open", at=Race.objects.get().race_datetime, actor=Actor("admin")
    )
    rows[0]["driver"] = "Blair Orange"

    preview = upload(admin_client, "card.csv", csv_of(rows))
    assert "→ Blair Orange (a driver change, sent to clients)" in preview.content.decode()
    confirm(admin_client, preview)

    assert StarterChange.objects.get().user == admin_user


def test_a_user_without_the_race_offices_permissions_cannot_import(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(user)

    assert client.get(reverse(IMPORT)).status_code == 403


def test_meetings_race_cards_export_as_csv_and_xlsx(admin_client):
    confirm(admin_client, upload(admin_client, "racecard.csv", EXAMPLE.read_bytes()))
    chosen = list(Meeting.objects.values_list("pk", flat=True))
    changelist = reverse("admin:races_meeting_changelist")

    as_csv = admin_client.post(changelist, {"action": "racecard_export_csv", "_selected_action": chosen})
    as_xlsx = admin_client.post(changelist, {"action": "racecard_export_xlsx", "_selected_action": chosen[:1]})

    assert as_csv["Content-Disposition"] == 'attachment; filename="racecard-meetings.csv"'
    assert as_csv.content == EXAMPLE.read_bytes()
    assert as_xlsx["Content-Disposition"] == 'attachment; filename="racecard-NZ_20261204_ADD.xlsx"'
    sheet = openpyxl.load_workbook(io.BytesIO(as_xlsx.content)).active
    assert sheet.max_row == 1 + Starter.objects.filter(race__meeting__code="NZ_20261204_ADD").count()


def test_previews_left_unconfirmed_are_bounded_the_oldest_going_first(admin_client, monkeypatch, tmp_path):
    import races.racecard.admin

    monkeypatch.setattr(races.racecard.admin, "PENDING_DIR", tmp_path)
    monkeypatch.setattr(races.racecard.admin, "PENDING_MAX_FILES", 3)
    previews = [upload(admin_client, "racecard.csv", EXAMPLE.read_bytes()) for _ in range(5)]

    assert len(list(tmp_path.iterdir())) == 3
    assert b"is gone" in confirm(admin_client, previews[0]).content
    assert confirm(admin_client, previews[-1]).status_code == 302
