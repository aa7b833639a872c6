"""
The race card in the meetings' admin: "Import race card" (upload, a preview of every change or of
every bad row, then confirm) and "Export race card" actions, as CSV or XLSX. Thin: the file is read
by races.racecard.formats and imported by races.racecard.services, with a dry run for the preview.
"""

from __future__ import annotations

import re
import secrets
import tempfile
import time
from pathlib import Path

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from races.exports.datasets import ExportFile
from races.exports.responses import attachment_response
from races.models import Source
from races.racecard.formats import (
    MAX_FILE_BYTES,
    FileRefused,
    content_type,
    dataset_read,
    dataset_write,
    format_of,
    size_check,
)
from races.racecard.rows import RowError
from races.racecard.selectors import racecard_dataset
from races.racecard.services import ImportReport, racecard_import
from races.services import Actor

# An uploaded file waits here between its preview and its confirmation (the server's own
# temporary folder: every process of one host sees it). One left unconfirmed goes after a day.
PENDING_DIR = Path(tempfile.gettempdir()) / "racecard-imports"
PENDING_MAX_AGE_S = 24 * 60 * 60
PENDING_MAX_FILES = 50  # previews waiting at once, 5 MB each at most
TOKEN = re.compile(r"^[0-9a-f]{32}\.(csv|xlsx|json)$")
PERMISSIONS = (
    "races.add_meeting", "races.change_meeting", "races.add_race", "races.change_race",
    "races.add_starter", "races.change_starter", "races.delete_starter",
)  # fmt: skip


class RacecardUploadForm(forms.Form):
    file = forms.FileField(
        label="Race card file",
        help_text=f"CSV (UTF-8), XLSX or JSON, one row per starter; at most {MAX_FILE_BYTES // 1024 // 1024} MB.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.xlsx,.json"}),
    )


def _pending_save(content: bytes, file_format: str) -> str:
    PENDING_DIR.mkdir(mode=0o700, exist_ok=True)
    pending = []
    for old in PENDING_DIR.iterdir():
        try:
            pending.append((old.stat().st_mtime, old))
        except FileNotFoundError:
            continue  # confirmed or cleared by another process meanwhile
    pending.sort()
    # Too old, or past the most that may wait (the oldest go first): the disk is never filled.
    for index, (modified, old) in enumerate(pending):
        if modified < time.time() - PENDING_MAX_AGE_S or len(pending) - index >= PENDING_MAX_FILES:
            old.unlink(missing_ok=True)
    token = f"{secrets.token_hex(16)}.{file_format}"
    (PENDING_DIR / token).write_bytes(content)
    return token


def _pending_take(token: str) -> tuple[bytes, str]:
    """Return a pending file's content and format, and forget it; raise FileRefused if it is gone."""
    if not TOKEN.match(token):
        raise FileRefused("the previewed file is unknown: upload it again")
    pending = PENDING_DIR / token
    try:
        content = pending.read_bytes()
    except FileNotFoundError:
        raise FileRefused("the previewed file is gone (imported already, or too old): upload it again") from None
    pending.unlink(missing_ok=True)
    return content, token.rsplit(".", 1)[1]


class RacecardAdminMixin(admin.ModelAdmin):
    """For the meetings' ModelAdmin: the race card import page and the export actions."""

    change_list_template = "admin/races/meeting/racecard_change_list.html"
    actions = ["racecard_export_csv", "racecard_export_xlsx"]

    def get_urls(self):
        own = [
            path(
                "import-racecard/",
                self.admin_site.admin_view(self.racecard_import_view),
                name="races_meeting_racecard_import",
            )
        ]
        return own + super().get_urls()

    def racecard_import_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perms(PERMISSIONS):
            raise PermissionDenied
        report: ImportReport | None = None
        token = file_name = ""
        form = RacecardUploadForm()
        actor = Actor(Source.ADMIN, request.user)
        if request.method == "POST" and "confirm" in request.POST:
            file_name = request.POST.get("file_name", "")
            try:
                content, file_format = _pending_take(request.POST.get("token", ""))
                report = racecard_import(
                    dataset=dataset_read(content=content, file_format=file_format), actor=actor, dry_run=False
                )
            except FileRefused as refused:
                report = _refusal(str(refused))
            if not report.errors:
                messages.success(request, f"Race card {file_name} imported: {report.summary()}.")
                return HttpResponseRedirect(reverse(f"{self.admin_site.name}:races_meeting_changelist"))
        elif request.method == "POST":
            form = RacecardUploadForm(request.POST, request.FILES)
            if form.is_valid():
                upload = form.cleaned_data["file"]
                file_name = upload.name
                try:
                    size_check(upload.size)  # before reading it
                    file_format = format_of(upload.name)
                    content = upload.read()
                    report = racecard_import(
                        dataset=dataset_read(content=content, file_format=file_format), actor=actor, dry_run=True
                    )
                except FileRefused as refused:
                    report = _refusal(str(refused))
                if not report.errors:
                    token = _pending_save(content, file_format)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import race card",
            "form": form,
            "report": report,
            "token": token,
            "file_name": file_name,
            "max_mb": MAX_FILE_BYTES // 1024 // 1024,
            "changelist_url": reverse(f"{self.admin_site.name}:races_meeting_changelist"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/races/meeting/racecard_import.html", context)

    def _racecard_export(self, queryset, file_format: str) -> HttpResponse:
        codes = list(queryset.order_by("date", "code").values_list("code", flat=True))
        name = codes[0] if len(codes) == 1 else "meetings"
        return attachment_response(
            export=ExportFile(
                content=dataset_write(racecard_dataset(meeting_codes=codes), file_format=file_format),
                content_type=content_type(file_format),
                filename=f"racecard-{name}.{file_format}",
            )
        )

    @admin.action(description="Export race card (CSV)", permissions=["view"])
    def racecard_export_csv(self, request: HttpRequest, queryset) -> HttpResponse:
        return self._racecard_export(queryset, "csv")

    @admin.action(description="Export race card (XLSX)", permissions=["view"])
    def racecard_export_xlsx(self, request: HttpRequest, queryset) -> HttpResponse:
        return self._racecard_export(queryset, "xlsx")


def _refusal(message: str) -> ImportReport:
    return ImportReport(dry_run=True, errors=[RowError(0, "", message)])
