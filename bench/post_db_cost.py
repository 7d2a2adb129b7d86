"""PostgreSQL's CPU per post: `python -m bench.post_db_cost [posts] [--variant SQL]... [--postgres-url URL]`.

Posts N messages as rooms-100x10 does (100 rooms of 10 members, each post by the next
member of the next room, through services.message_create), in a fresh scratch database
whose tables were analyzed while empty, and prints the CPU PostgreSQL's backends used per
post, from /proc: PostgreSQL must run on this machine. Each --variant is SQL run on the
scratch database before the posts (an index or a constraint dropped), to measure what a
schema change would save before making it.
"""

import argparse
import os
import time

from bench.reconnect_db_cost import backend_cpu_seconds
from bench.server import prepare_database

DATABASE = "bench_post_db_cost"
ROOMS = 100
MEMBERS = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("posts", type=int, nargs="?", default=10_000)
    parser.add_argument("--variant", action="append", default=[], help="SQL run on the scratch database before posting")
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = prepare_database(args.postgres_url, DATABASE, fresh=True)
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    import django

    django.setup()
    import psycopg

    from chat.core import services
    from chat.models import Membership, Room, User

    users = User.objects.bulk_create([User(username=f"poster-{n}") for n in range(ROOMS * MEMBERS)])
    rooms = Room.objects.bulk_create([Room(name=f"room-{n}", host=users[n * MEMBERS]) for n in range(ROOMS)])
    Membership.objects.bulk_create(
        [Membership(room=room, user=users[r * MEMBERS + m]) for r, room in enumerate(rooms) for m in range(MEMBERS)]
    )
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as admin:
        for sql in args.variant:
            admin.execute(sql)
        admin.execute("VACUUM ANALYZE")
        before, started = backend_cpu_seconds(admin), time.monotonic()
        for n in range(args.posts):
            room = n % ROOMS
            author = users[room * MEMBERS + (n // ROOMS) % MEMBERS]
            services.message_create(room_id=rooms[room].pk, author=author, text=f"message {n} " + "x" * 88)
        wall, cpu = time.monotonic() - started, backend_cpu_seconds(admin) - before
    print(f"{args.posts} posts: PostgreSQL CPU ms per post {1000 * cpu / args.posts:.3f}; wall {1000 * wall / args.posts:.3f} ms each"
          + (f" (variant: {'; '.join(args.variant)})" if args.variant else ""))  # fmt: skip


if __name__ == "__main__":
    main()
