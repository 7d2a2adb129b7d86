"""Search benchmark (issue 13): full-text message search over 1,000,000 messages in 1,000 rooms on PostgreSQL.

    python -m bench.search                    # build the data set (once) and measure
    python -m bench.search --rebuild          # drop and rebuild the data set first
    python -m bench.search --messages 100000  # a smaller data set (its own database)

The data set lives in a database of its own (`bench_search_<messages>` on the server of
DATABASE_URL, default postgres://postgres@127.0.0.1:5432/), migrated with the project's
migrations, so the search runs on the real schema and index. Messages are bulk-loaded
with COPY, with the search index built after the load. Their text is drawn from a
vocabulary with a Zipf-like word frequency (a few very common words, a long tail of rare
ones) including accented words, so queries cover the whole range of selectivity.

Each query goes through `chat.core.selectors.message_search` and is serialized with
`MessageSerializer`, as an HTTP or WebSocket search would be, for one user who can see
every public room and the private rooms they are a member of (when rooms have a `kind`).
The p50/p95 per kind of query, and over all of them, are printed and written as JSON.
This is a benchmark, not a test.
"""

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOMS = 1000
USERS = 200
SEED = 13
COMMON = (
    "the be to of and a in that have it for not on with he as you do at this but his by from they we say her she or an will my one all "
    "would there their what so up out if about who get which go me when make can like time no just him know take people into year your "
    "good some could them see other than then now look only come its over think also back after use two how our work first well way even "
    "new want because any these give day most us meeting deploy release server client database chat room message search index query"
).split()
ACCENTED = "café résumé naïve Zürich São Paulo crème brûlée façade jalapeño piñata déjà vu fiancée über Ångström Øresund Łódź".split()


def _vocabulary(rng: random.Random) -> list[str]:
    """Common words first (so they get the highest weights), then accented ones, then a long tail of made-up words."""
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "qu", "do", "fe", "gi", "ho", "ju", "ly", "ba", "ce", "wu"]
    tail = {"".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(40000)}
    return COMMON + ACCENTED + sorted(tail - set(COMMON))


def _database_url(base: str, name: str) -> str:
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _admin_connection(base: str) -> Any:
    import psycopg

    return psycopg.connect(_database_url(base, "postgres"), autocommit=True)


def _database_exists(base: str, name: str) -> bool:
    with _admin_connection(base) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def _recreate_database(base: str, name: str) -> None:
    with _admin_connection(base) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _load(messages: int, rooms: int) -> None:
    """Migrate the (empty) bench database and bulk-load users, rooms, memberships and messages."""
    from django.core.management import call_command
    from django.db import connection

    from chat.models import Membership

    call_command("migrate", verbosity=0)
    rng = random.Random(SEED)
    vocabulary = _vocabulary(rng)
    cum_weights = list(itertools.accumulate(1 / (rank + 1) ** 1.05 for rank in range(len(vocabulary))))
    started = time.monotonic()
    with connection.cursor() as cursor:
        raw = cursor.cursor
        user_columns = "id, password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined"
        with raw.copy(f"COPY chat_user ({user_columns}) FROM STDIN") as copy:
            for user_id in range(1, USERS + 1):
                copy.write_row((user_id, "!", False, f"user{user_id}", "", "", "", False, True, "2026-01-01T00:00:00Z"))
        has_kind = "kind" in [column.name for column in connection.introspection.get_table_description(cursor, "chat_room")]
        per_room = messages // rooms
        room_columns = "id, name, host_id, last_seq, created_at" + (", kind" if has_kind else "")
        with raw.copy(f"COPY chat_room ({room_columns}) FROM STDIN") as copy:
            for room_id in range(1, rooms + 1):
                row: tuple[Any, ...] = (room_id, f"room-{room_id}", 1 + room_id % USERS, per_room, "2026-01-01T00:00:00Z")
                if has_kind:  # one room in ten is private once private rooms exist
                    row += ("private" if room_id % 10 == 0 else "public",)
                copy.write_row(row)
        # The membership table with whatever columns it has (issue 12 adds role, joined_at, read state): their defaults.
        through = Membership
        others = [f for f in through._meta.concrete_fields if not f.primary_key and f.column not in ("room_id", "user_id")]
        columns = ", ".join(["room_id", "user_id", *(str(f.column) for f in others)])
        defaults = tuple(f.get_default() for f in others)
        with raw.copy(f"COPY {through._meta.db_table} ({columns}) FROM STDIN") as copy:
            for room_id in range(1, rooms + 1):
                for user_id in {1 + room_id % USERS, 1 + (room_id * 7) % USERS, 1 + (room_id * 13) % USERS}:
                    copy.write_row((room_id, user_id, *defaults))
        # The index is built once after the load: maintaining it row by row is several times slower.
        cursor.execute("DROP INDEX IF EXISTS message_text_search")
        with raw.copy("COPY chat_message (id, room_id, seq, user_id, text, created_at) FROM STDIN") as copy:
            for message_id in range(1, messages + 1):
                room_id = 1 + (message_id - 1) % rooms
                seq = 1 + (message_id - 1) // rooms
                words = rng.choices(vocabulary, cum_weights=cum_weights, k=rng.randint(4, 20))
                if rng.random() < 0.5:
                    words[0] = words[0].capitalize()
                created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1767225600 + message_id * 30))
                copy.write_row((message_id, room_id, seq, 1 + message_id % USERS, " ".join(words), created))
        print(f"loaded {messages:,} messages in {time.monotonic() - started:.0f} s; building the search index", flush=True)
        for table in ("chat_user", "chat_room", "chat_message"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        cursor.execute("SET maintenance_work_mem = '256MB'")
        cursor.execute("CREATE INDEX message_text_search ON chat_message USING gin (search_vector)")
        cursor.execute("VACUUM ANALYZE")
    print(f"data set ready in {time.monotonic() - started:.0f} s", flush=True)


def _queries(rng: random.Random, rooms: int) -> list[tuple[str, dict[str, Any]]]:
    """The typical searches: (kind, message_search arguments)."""
    medium = COMMON[60:]
    rare = _vocabulary(random.Random(SEED))[len(COMMON) + len(ACCENTED) + 2000 :]
    plan: list[tuple[str, dict[str, Any]]] = []
    for _ in range(40):
        plan += [
            ("one common word", {"query": rng.choice(COMMON[:40])}),
            ("one medium word", {"query": rng.choice(medium)}),
            ("one rare word", {"query": rng.choice(rare)}),
            ("two words, any order", {"query": f"{rng.choice(medium)} {rng.choice(COMMON[:60])}"}),
            ("three words", {"query": " ".join(rng.sample(COMMON[:80], 3))}),
            ("accent and case folded", {"query": rng.choice(["CAFE", "resume", "zurich", "Sao paulo", "creme brulee", "lodz"])}),
            ("no match", {"query": "qwxzvbnm"}),
            ("one room, common word", {"query": rng.choice(COMMON[:40]), "room_id": rng.randint(1, rooms)}),
            ("one room, two words", {"query": f"{rng.choice(medium)} {rng.choice(COMMON[:40])}", "room_id": rng.randint(1, rooms)}),
            ("next page (before_id)", {"query": rng.choice(COMMON[:40]), "page": 2}),
        ]
    return plan


def _measure(rooms: int) -> dict[str, Any]:
    from chat.core import selectors
    from chat.core.serializers import MessageSerializer
    from chat.models import Message, Room, User

    user = User.objects.get(pk=1)
    visible = selectors.rooms_visible_to(user=user)
    visible_ids = list(visible.values_list("pk", flat=True))
    rng = random.Random(SEED)
    timings: dict[str, list[float]] = {}
    plan = _queries(rng, rooms)
    for _, args in plan[:20]:  # warm the caches: the figures are for a server that has been running
        selectors.message_search(user=user, query=args["query"], limit=20)
    for kind, args in plan:
        args = dict(args)
        if "room_id" in args:
            args["room_id"] = rng.choice(visible_ids)
        page = args.pop("page", 1)
        if page == 2:
            first, _ = selectors.message_search(user=user, limit=20, **args)
            args["before_id"] = first[-1].pk if first else None
        started = time.perf_counter()
        messages, _ = selectors.message_search(user=user, limit=20, **args)
        assert isinstance(MessageSerializer(messages, many=True).data, list)
        timings.setdefault(kind, []).append((time.perf_counter() - started) * 1000)
    every = [ms for values in timings.values() for ms in values]

    def summary(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {
            "n": len(ordered),
            "p50_ms": round(statistics.median(ordered), 2),
            "p95_ms": round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 2),
            "max_ms": round(ordered[-1], 2),
        }

    return {
        "messages": Message.objects.count(),
        "rooms": Room.objects.count(),
        "visible_rooms": len(visible_ids),
        "by_kind": {kind: summary(values) for kind, values in timings.items()},
        "all": summary(every),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--rooms", type=int, default=ROOMS)
    parser.add_argument("--rebuild", action="store_true", help="drop and rebuild the data set")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--output", default="bench/results/search.json")
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgres"):
        parser.error("the search benchmark needs PostgreSQL (--database-url or DATABASE_URL)")
    name = f"bench_search_{args.messages}"
    fresh = args.rebuild or not _database_exists(args.database_url, name)
    if fresh:
        _recreate_database(args.database_url, name)
    os.environ["DATABASE_URL"] = _database_url(args.database_url, name)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
    import django

    django.setup()
    if fresh:
        _load(args.messages, args.rooms)
    result = _measure(args.rooms)
    result["database"] = name
    width = max(len(kind) for kind in result["by_kind"])
    print(f"{'query':<{width}}  {'n':>4}  {'p50 ms':>8}  {'p95 ms':>8}  {'max ms':>8}")
    for kind, row in [*result["by_kind"].items(), ("all", result["all"])]:
        print(f"{kind:<{width}}  {row['n']:>4}  {row['p50_ms']:>8.2f}  {row['p95_ms']:>8.2f}  {row['max_ms']:>8.2f}")
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
