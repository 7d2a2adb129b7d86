"""patch, list and history have one implementation (chat.core.operations): HTTP and WebSocket answer alike.

Also: WebSocket metric labels are the consumer's own action names, anything else is "other".
"""

from typing import Any

import pytest
from prometheus_client import REGISTRY

from chat.core import services
from tests.conftest import client_for
from tests.db import database_sync_to_async
from tests.factories import RoomFactory, UserFactory
from tests.ws import connect

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@database_sync_to_async
def setup() -> tuple[Any, Any, Any]:
    host = UserFactory.create()
    room = RoomFactory.create(host=host, name="shared-ops")
    for i in range(3):
        services.message_store(room_id=room.pk, author=host, text=f"m{i}")
    return host, room, client_for(host)


async def test_http_and_websocket_list_history_and_patch_answer_the_same() -> None:
    host, room, api = await setup()
    get = database_sync_to_async(api.get)
    patch = database_sync_to_async(api.patch)
    async with connect(host) as ws:
        over_http = await get("/api/rooms/", {"name": "shared-ops", "page_size": 1})
        over_ws = await ws.request("list", name="shared-ops", page_size=1)
        assert over_ws["data"] == over_http.json() and over_http.json()["count"] == 1

        over_http = await get(f"/api/rooms/{room.pk}/messages/", {"after_seq": 1, "limit": 1})
        over_ws = await ws.request("list_messages", pk=room.pk, after_seq=1, limit=1)
        assert over_ws["data"] == over_http.json() == {"results": [over_http.json()["results"][0]], "has_more": True}
        bad = await ws.bad_request("list_messages", pk=room.pk, after_seq=1, before_seq=3)
        assert bad["errors"] == [(await get(f"/api/rooms/{room.pk}/messages/", {"after_seq": 1, "before_seq": 3})).json()]

        renamed_http = (await patch(f"/api/rooms/{room.pk}/", {"name": "renamed-by-http"}, format="json")).json()
        renamed_ws = await ws.request("patch", pk=room.pk, data={"name": "renamed-by-ws"})
        assert {**renamed_ws["data"], "name": "renamed-by-http"} == renamed_http
        unchanged_http = (await patch(f"/api/rooms/{room.pk}/", {}, format="json")).json()
        unchanged_ws = await ws.bad_request("patch", pk=room.pk, data={})  # allowed, though the AsyncAPI asks for a name
        assert unchanged_ws["data"] == unchanged_http and unchanged_http["name"] == "renamed-by-ws"


def actions_counted(action: str, status: int) -> float:
    return REGISTRY.get_sample_value("chat_ws_actions_total", {"action": action, "status": str(status)}) or 0.0


async def test_websocket_metric_labels_are_the_consumers_actions() -> None:
    host, _, _ = await setup()
    before = actions_counted("list", 200), actions_counted("other", 405)
    async with connect(host) as ws:
        await ws.request("list")
        assert (await ws.bad_request("no_such_action"))["response_status"] == 405
    assert (actions_counted("list", 200), actions_counted("other", 405)) == (before[0] + 1, before[1] + 1)
