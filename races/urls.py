from django.urls import path

from races import api

urlpatterns = [
    path("meetings/", api.MeetingList.as_view(), name="meeting-list"),
    path("meetings/<str:code>/", api.MeetingDetail.as_view(), name="meeting-detail"),
    path("races/", api.RaceList.as_view(), name="race-list"),
    path("races/<int:race_id>/", api.RaceDetail.as_view(), name="race-detail"),
    path("races/<int:race_id>/odds/", api.RaceOdds.as_view(), name="race-odds"),
    path("races/<int:race_id>/odds/latest/", api.RaceOddsLatest.as_view(), name="race-odds-latest"),
    path("races/<int:race_id>/results/", api.RaceResults.as_view(), name="race-results"),
]
