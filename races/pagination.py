"""The API's pages of a list: DRF's page numbers, with a page parameter that is empty or given
twice refused (400) instead of read as the first page."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination


class Pages(PageNumberPagination):
    def get_page_number(self, request: Any, paginator: Any) -> Any:
        values = request.query_params.getlist(self.page_query_param)
        if len(values) > 1:
            raise ValidationError({self.page_query_param: ["give it once."]})
        if values and not values[0]:
            raise ValidationError({self.page_query_param: ["must be a page number, 1 or more."]})
        return super().get_page_number(request, paginator)
