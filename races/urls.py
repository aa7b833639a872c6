from django.urls import path

import races.converters  # noqa: F401 - registers the <id:...> and <text:...> path converters
from races import api
from races.exports import api as exports

urlpatterns = [
    path("meetings/", api.MeetingList.as_view(), name="meeting-list"),
    path("meetings/<text:code>/", api.MeetingDetail.as_view(), name="meeting-detail"),
    path("meetings/<text:code>/racecard/", exports.MeetingRacecardExport.as_view(), name="meeting-racecard-export"),
    path("races/", api.RaceList.as_view(), name="race-list"),
    path("next-to-go/", api.NextToGoList.as_view(), name="next-to-go"),
    path("races/<id:race_id>/", api.RaceDetail.as_view(), name="race-detail"),
    path("races/<id:race_id>/odds/", api.RaceOdds.as_view(), name="race-odds"),
    path("races/<id:race_id>/odds/latest/", api.RaceOddsLatest.as_view(), name="race-odds-latest"),
    path("races/<id:race_id>/results/", api.RaceResults.as_view(), name="race-results"),
    path("races/<id:race_id>/results/export/", exports.RaceResultsExport.as_view(), name="race-results-export"),
    path("races/<id:race_id>/odds/export/", exports.RaceOddsExport.as_view(), name="race-odds-export"),
    path("races/<id:race_id>/status/", api.RaceStatusView.as_view(), name="race-status"),
    path("races/<id:race_id>/starters/<id:horse_id>/scratch/", api.StarterScratch.as_view(), name="starter-scratch"),
    path(
        "races/<id:race_id>/starters/<id:horse_id>/reinstate/", api.StarterReinstate.as_view(), name="starter-reinstate"
    ),
    path("races/<id:race_id>/starters/<id:horse_id>/driver/", api.StarterDriver.as_view(), name="starter-driver"),
]
