"""The one way an export leaves the server: an HTTP attachment, for the API and the admin alike."""

from __future__ import annotations

from django.http import HttpResponse
from django.utils.http import content_disposition_header

from races.exports.datasets import ExportFile


def attachment_response(*, export: ExportFile) -> HttpResponse:
    """Return ``export`` as a download named after its races."""
    response = HttpResponse(export.content, content_type=export.content_type)
    response["Content-Disposition"] = content_disposition_header(True, export.filename) or ""
    return response
