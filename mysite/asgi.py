"""ASGI entry point: HTTP through Django, WebSockets through the chat consumer."""

import gc
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
# Django must be set up before anything imports models (as get_asgi_application does).
django.setup(set_prefix=False)

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chat.http.asgi import OneHopASGIHandler, publishing_before_response  # noqa: E402
from chat.ws.auth import websocket_auth_stack  # noqa: E402
from chat.ws.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": publishing_before_response(OneHopASGIHandler()),
        # The chat consumer checks a handshake's token in the round trip that records its connection.
        "websocket": websocket_auth_stack(URLRouter(websocket_urlpatterns), consumer_checks_tokens=True),
    }
)

# Everything loaded so far (Django, the apps, DRF, Channels: a few hundred thousand
# objects) lives as long as the process. Freezing it keeps the collector's full passes
# from walking it again and again, which stalls the event loop mid-fan-out (the p99
# latency it saves is in bench/README.md).
gc.freeze()
