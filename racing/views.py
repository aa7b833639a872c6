"""Error pages: JSON for the API (its clients parse bodies), Django's own pages elsewhere."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import exception_handler


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Return DRF's error response in the API's one error shape (``error_body``), with a request
    body over the size limit answered 413."""
    if isinstance(exc, RequestDataTooBig):
        # Django raises this when the view first reads the body; DRF leaves it to Django, which
        # answers with its HTML 400 page (and logs a traceback) for what is the client's mistake.
        exc = PayloadTooLarge(
            f"The request body is larger than the {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes this API accepts."
        )
    response = exception_handler(exc, context)
    if response is not None:
        response.data = error_body(response.data)
    return response


def error_body(data: Any) -> dict[str, Any]:
    """Return DRF's error data as the API's one error body (the schema's Error): ``detail``, a
    sentence for people, and for a field-by-field refusal ``errors``, DRF's own report of it."""
    if isinstance(data, dict) and set(data) == {"detail"}:
        return {"detail": str(data["detail"])}
    errors = data if isinstance(data, dict) else {"non_field_errors": data}
    problems = list(_problems(errors))
    detail = "; ".join(problems[:MAX_PROBLEMS_IN_DETAIL])
    if len(problems) > MAX_PROBLEMS_IN_DETAIL:
        detail += f"; and {len(problems) - MAX_PROBLEMS_IN_DETAIL} more"
    return {"detail": detail or "Invalid request.", "errors": errors}


# A long list of refusals (40 runners, each wrong) is summed up in the sentence and kept whole in
# errors.
MAX_PROBLEMS_IN_DETAIL = 3


def _problems(errors: Any, path: str = ""):
    """Yield "where: what" for each message in DRF's nested error report."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            where = path if key == "non_field_errors" else (f"{path}.{key}" if path else str(key))
            yield from _problems(value, where)
    elif isinstance(errors, list):
        for index, value in enumerate(errors):
            if isinstance(value, dict | list):
                yield from _problems(value, f"{path}.{index}" if path else str(index))
            else:
                yield f"{path}: {value}" if path else str(value)
    else:
        yield f"{path}: {errors}" if path else str(errors)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": f"Nothing at {request.path}."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return defaults.server_error(request)
