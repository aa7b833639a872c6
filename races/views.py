from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from races.selectors import meeting_list_with_races


def race_day(request: HttpRequest) -> HttpResponse:
    """Render the meetings and their races, each with the address of its live WebSocket."""
    return render(request, "races/race_day.html", {"meetings": meeting_list_with_races()})
