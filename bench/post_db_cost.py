"""PostgreSQL's CPU per post: `python -m bench.post_db_cost [posts] [--rate R] [--variant SQL]... [--postgres-url URL]`.

Posts N messages as rooms-100x10 does (100 rooms of 10 members, each post by the next
member of the next room, through services.message_create), in a fresh scratch database
whose tables were analyzed while empty, and prints the CPU PostgreSQL's backends used per
post, from /proc: PostgreSQL must run on this machine. Each --variant is SQL run on the
scratch database before the posts (an index or a constraint dropped, a setting of the
database), to measure what a change would save before making it.

It also prints the percentiles of one post's wall time: its flood-limit count in Redis and
its statement, what a post waits for before its event is published. With --rate the
posts are paced as a fixed-rate phase sends them (50/s in rate-100): each then wakes
processes that had gone idle (this one, Redis, PostgreSQL), which back-to-back posts do
not, and finds less of its work in the CPU's caches.
"""

import argparse
import os
import time
from array import array

from bench.reconnect_db_cost import backend_cpu_seconds
from bench.server import prepare_database
from bench.stats import latency_summary

DATABASE = "bench_post_db_cost"
ROOMS = 100
MEMBERS = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("posts", type=int, nargs="?", default=10_000)
    parser.add_argument("--rate", type=float, default=0.0, help="posts per second, paced (default: back to back)")
    parser.add_argument("--variant", action="append", default=[], help="SQL run on the scratch database before posting")
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = prepare_database(args.postgres_url, DATABASE, fresh=True)
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    import django

    django.setup()
    import psycopg
    from django.db import DEFAULT_DB_ALIAS, connections
    from django.db.backends.postgresql.base import DatabaseWrapper

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
        database = connections[DEFAULT_DB_ALIAS]
        assert isinstance(database, DatabaseWrapper)
        database.close_pool()  # the posts' sessions start after the variants (a database's settings)
        post_walls_ms, interval = array("f"), 1 / args.rate if args.rate else 0.0
        before = backend_cpu_seconds(admin)
        started = next_post = time.monotonic()
        for n in range(args.posts):
            room = n % ROOMS
            author = users[room * MEMBERS + (n // ROOMS) % MEMBERS]
            began = time.monotonic()
            services.message_create(room_id=rooms[room].pk, author=author, text=f"message {n} " + "x" * 88)
            post_walls_ms.append((time.monotonic() - began) * 1000)
            next_post += interval
            time.sleep(max(0.0, next_post - time.monotonic()))
        wall, cpu = time.monotonic() - started, backend_cpu_seconds(admin) - before
    post_wall = latency_summary(post_walls_ms)
    # Paced, the run's wall time is the pace's: only back to back does it say what a post costs.
    pace = f" at {args.rate:g}/s" if args.rate else f" back to back, {1000 * wall / args.posts:.3f} ms each"
    variant = f" (variant: {'; '.join(args.variant)})" if args.variant else ""
    print(
        f"{args.posts} posts{pace}: PostgreSQL CPU ms per post {1000 * cpu / args.posts:.3f};"
        f" one post's wall ms p50 {post_wall['p50']}, p90 {post_wall['p90']}, p99 {post_wall['p99']}{variant}"
    )


if __name__ == "__main__":
    main()
