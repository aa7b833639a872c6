from django.urls import re_path

from live.protocol.consumers import LiveConsumer, NoSuchEndpointConsumer, RaceConsumer

websocket_urlpatterns = [
    # Anything after /ws/races/, so that a malformed id (letters, "1/2", "/1", "1/../2") reaches
    # the consumer and gets close code 4004 with a reason.
    re_path(r"^ws/races/(?P<race_id>.*?)/?$", RaceConsumer.as_asgi()),
    # One connection, many races (docs/protocol.md, "/ws/live").
    re_path(r"^ws/live/?$", LiveConsumer.as_asgi()),
    # Any other path: 4404 with a reason, instead of an unrouted path's HTTP 500 and traceback.
    re_path(r"", NoSuchEndpointConsumer.as_asgi()),
]
