"""PostgreSQL's CPU per reconnecting client: `python -m bench.reconnect_db_cost [reconnects] [--postgres-url URL]`.

Runs what one client's reconnect asks of the database (the handshake's statement, the join's
read and write, the subscription's read: the services its thread hops call), N times for
N connections of 50 users in one room holding a few messages (as the storm's room does), in a
fresh scratch database whose tables were analyzed while empty (as the bench's maintenance
leaves them before a scenario). Prints the CPU
PostgreSQL's backends used per reconnect, per step, from /proc: PostgreSQL must run on this
machine. The reconnect storm's first seconds are bound by this (bench/README.md, session 8).
"""

import argparse
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from bench.server import prepare_database

DATABASE = "bench_reconnect_db_cost"
USERS = 50
MESSAGES = 10  # so that a join reads the room's last message, as in the storm
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def backend_cpu_seconds(admin: Any) -> float:
    """User + system CPU of every backend of this database but the asking one."""
    total = 0.0
    for (pid,) in admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"):
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:  # a backend that just ended
            continue
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reconnects", type=int, nargs="?", default=2000)
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = prepare_database(args.postgres_url, DATABASE, fresh=True)
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    import django

    django.setup()
    import psycopg
    from rest_framework.authtoken.models import Token

    from chat.core import selectors, services
    from chat.models import Membership, Room, User

    users = [User.objects.create_user(f"reconnect-{n}") for n in range(USERS)]
    keys = [Token.objects.create(user=user).key for user in users]
    room = Room.objects.create(name="reconnect", host=users[0])
    Membership.objects.bulk_create([Membership(room=room, user=user) for user in users])
    for n in range(MESSAGES):
        services.message_create(room_id=room.pk, author=users[n % USERS], text=f"before the restart {n}")
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as admin:
        admin.execute("VACUUM ANALYZE")
        steps: dict[str, float] = {"handshake": 0.0, "join": 0.0, "subscribe": 0.0}

        def timed(step: str, call: Callable[..., Any], **arguments: Any) -> Any:
            before = backend_cpu_seconds(admin)
            result = call(**arguments)
            steps[step] += backend_cpu_seconds(admin) - before
            return result

        started = time.monotonic()
        for n in range(args.reconnects):
            name = f"specific.{uuid.uuid4().hex}"
            user, _ = timed("handshake", services.connection_open_by_token, key=keys[n % USERS], channel_name=name, server_id="cost")
            timed("join", services.presence_enter, channel_name=name, room_id=room.pk, user=user)
            timed("subscribe", selectors.room_last_seq, room_id=room.pk, user=user)
        wall = time.monotonic() - started
    total = sum(steps.values())
    per_step = ", ".join(f"{step} {1000 * cpu / args.reconnects:.3f}" for step, cpu in steps.items())
    print(f"{args.reconnects} reconnects: PostgreSQL CPU ms per reconnect {1000 * total / args.reconnects:.3f} ({per_step}); "
          f"wall {1000 * wall / args.reconnects:.2f} ms each")  # fmt: skip


if __name__ == "__main__":
    main()
