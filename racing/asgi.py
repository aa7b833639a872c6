"""ASGI entry point: Django for HTTP, the live race protocol for WebSockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "racing.settings")
# Set up Django before importing consumers, which import models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from live.protocol import daphne  # noqa: E402
from live.protocol.routing import websocket_urlpatterns  # noqa: E402
from live.protocol.security import BrowserOriginValidator  # noqa: E402

daphne.install()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": BrowserOriginValidator(URLRouter(websocket_urlpatterns)),
    }
)
