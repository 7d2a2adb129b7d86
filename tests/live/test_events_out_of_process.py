"""Events do not depend on importing the consumer: any process that writes through the services publishes.

A separate process (`manage.py shell -c ...`, as a worker, a management command or
a bot script would) posts through chat.core.services, and a WebSocket subscriber on
a running server receives the `create` event.
"""

import subprocess
import textwrap

import pytest

from tests.contract import contract_connect
from tests.live import PYTHON, ROOT, create_room, register_user, run_servers, service_env

pytestmark = [pytest.mark.live, pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def post_from_a_shell(room_id: int, user_id: int, text: str) -> subprocess.CompletedProcess[str]:
    """Post through the service layer from a fresh Django process that never imports the WebSocket code."""
    script = textwrap.dedent(
        f"""
        import sys
        from chat.core import services
        from chat.models import User
        services.message_create(room_id={room_id}, author=User.objects.get(pk={user_id}), text={text!r})
        assert "chat.ws.consumer" not in sys.modules, "the script must not rely on the consumer being imported"
        """
    )
    return subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", script], cwd=ROOT, env=service_env(), capture_output=True, text=True, timeout=120
    )


async def test_a_message_posted_by_another_process_reaches_websocket_subscribers() -> None:
    with run_servers(1) as (server,):
        host = register_user(server.base_url)
        room = create_room(server.base_url, host)
        async with contract_connect(f"{server.ws_url}?token={host.token}") as client:
            response = await client.request("subscribe_to_messages_in_room", request_id="s", pk=room["pk"])
            assert response["response_status"] == 200, response
            done = post_from_a_shell(room["pk"], host.id, "from a script")
            assert done.returncode == 0, done.stdout + done.stderr
            push = await client.receive_json_from(timeout=10)
        assert push["action"] == "create" and push["request_id"] == "s", push
        assert (push["data"]["text"], push["data"]["seq"], push["data"]["user"]["id"]) == ("from a script", 1, host.id)
