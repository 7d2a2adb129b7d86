"""`make run`'s configuration works with no services: a server started with no environment at all serves the API.

Only PATH and HOME are set, so the embedded defaults apply: the SQLite file
BASE_DIR/db.sqlite3 (gitignored, migrated here the way `make run` does) and the
in-memory channel layer. Everything goes over real HTTP, as a client would.
"""

import subprocess

import pytest
import requests

from tests.live import PYTHON, ROOT, explain, minimal_env, register_user, run_servers, unique_name

pytestmark = pytest.mark.live


def test_embedded_default_serves_register_token_room_post_history() -> None:
    env = minimal_env()
    migrate = subprocess.run([PYTHON, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr

    with run_servers(1, base_env=env) as (server,):
        ready = requests.get(f"{server.base_url}/readyz", timeout=10)
        assert ready.status_code == 200, explain(ready)
        assert ready.json()["checks"] == {"database": "ok", "channel_layer": "ok"}

        user = register_user(server.base_url, unique_name("smoke"))
        me = requests.get(f"{server.base_url}/api/users/me/", headers=user.headers, timeout=10)
        assert me.status_code == 200, explain(me)
        assert me.json() == {"id": user.id, "username": user.username}

        room_name = unique_name("smoke-room")
        created = requests.post(f"{server.base_url}/api/rooms/", json={"name": room_name}, headers=user.headers, timeout=10)
        assert created.status_code == 201, explain(created)
        room = created.json()
        assert room["name"] == room_name
        assert room["host"] == {"id": user.id, "username": user.username}

        posted = requests.post(
            f"{server.base_url}/api/rooms/{room['pk']}/messages/",
            json={"text": "  hello from the smoke test  ", "client_id": "smoke-1"},
            headers=user.headers,
            timeout=10,
        )
        assert posted.status_code == 201, explain(posted)
        message = posted.json()
        assert (message["room"], message["seq"], message["text"]) == (room["pk"], 1, "hello from the smoke test")
        assert message["user"] == {"id": user.id, "username": user.username}

        history = requests.get(f"{server.base_url}/api/rooms/{room['pk']}/messages/", headers=user.headers, timeout=10)
        assert history.status_code == 200, explain(history)
        assert history.json() == {"results": [message], "has_more": False}

        # The room now shows its last message, and nobody else's rooms got it.
        listed = requests.get(f"{server.base_url}/api/rooms/", params={"name": room_name}, headers=user.headers, timeout=10)
        assert listed.status_code == 200, explain(listed)
        assert [r["last_message"] for r in listed.json()["results"]] == [message]

        output = server.output()
    # Credentials never reach the server's logs.
    assert user.token not in output and user.password not in output
