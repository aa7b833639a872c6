from django.urls import re_path

from live.consumers import RaceConsumer

websocket_urlpatterns = [
    # Any segment, so that a non-numeric id reaches the consumer and gets close code 4004.
    re_path(r"^ws/races/(?P<race_id>[^/]+)/?$", RaceConsumer.as_asgi()),
]
