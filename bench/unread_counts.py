"""Unread counts: an index of (room, seq) INCLUDE user vs a counter kept in the post's transaction (issue 12).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/scratch_unread python -m bench.unread_counts

Builds its own data in the database given (migrated from scratch; everything in it is
dropped): one user in 200 rooms of MESSAGES messages each, with 0-500 unread per room,
and rooms of 10/100/1,000 members to price the counter's write side. Prints medians in ms.
"""

import os
import statistics
import time
from collections.abc import Callable

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from chat.core import selectors, services  # noqa: E402
from chat.models import Membership, Room, User  # noqa: E402

ROOMS = 200
MESSAGES = int(os.environ.get("MESSAGES", "5000"))


def median_ms(work: Callable[[], object], runs: int = 15) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def build() -> User:
    call_command("flush", interactive=False, verbosity=0)
    me, other = User.objects.create(username="me"), User.objects.create(username="other")
    with connection.cursor() as cursor:
        for i in range(ROOMS):
            room = Room.objects.create(name=f"room-{i}", host=other, last_seq=MESSAGES)
            cursor.execute(
                "INSERT INTO chat_message (room_id, seq, user_id, text, created_at) "
                "SELECT %s, s, CASE WHEN s %% 7 = 0 THEN %s ELSE %s END, 'x', now() FROM generate_series(1, %s) s",
                [room.pk, me.pk, other.pk, MESSAGES],
            )
            Membership.objects.create(room=room, user=me, last_read_seq=MESSAGES - (i * 500 // ROOMS))
    with connection.cursor() as cursor:  # VACUUM cannot run in a transaction block; autocommit is on here
        cursor.execute("VACUUM ANALYZE")  # fresh visibility map, as a long-lived table has: index-only scans
    return me


def counter_read(me: User) -> None:
    # The counter option's read: the same page, with a stored count instead of the correlated one.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT m.room_id, m.unread_counter FROM chat_membership m WHERE m.user_id = %s ORDER BY m.room_id DESC LIMIT 200",
            [me.pk],
        )
        cursor.fetchall()


def main() -> None:
    me = build()
    print(f"{ROOMS} rooms x {MESSAGES} messages, 0-500 unread per room")
    print("index (room, seq) INCLUDE user: list_my_rooms page of 200:", median_ms(lambda: selectors.inbox(user=me, page_size=200)), "ms")
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE chat_message DROP CONSTRAINT message_room_seq_unique, ADD CONSTRAINT message_room_seq_unique UNIQUE (room_id, seq)"
        )
        cursor.execute("VACUUM ANALYZE chat_message")
    print("index (room, seq) without user:  list_my_rooms page of 200:", median_ms(lambda: selectors.inbox(user=me, page_size=200)), "ms")
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE chat_message DROP CONSTRAINT message_room_seq_unique, "
            "ADD CONSTRAINT message_room_seq_unique UNIQUE (room_id, seq) INCLUDE (user_id)"
        )
        cursor.execute("VACUUM ANALYZE chat_message")
        cursor.execute("ALTER TABLE chat_membership ADD COLUMN unread_counter integer NOT NULL DEFAULT 0")
    read_upto = dict(Membership.objects.filter(user=me).values_list("pk", "last_read_seq"))
    Membership.objects.filter(user=me).update(last_read_seq=MESSAGES)
    print("index, everything read (no unread to count):", median_ms(lambda: selectors.inbox(user=me, page_size=200)), "ms")
    for pk, seq in read_upto.items():
        Membership.objects.filter(pk=pk).update(last_read_seq=seq)
    print(
        "counter: reading the page's stored counts:", median_ms(lambda: counter_read(me)), "ms (plus the same room/presence/newest reads)"
    )
    # The write side: a post in a room of N members, today vs with the counter's extra UPDATE.
    for members in [10, 100, 1000]:
        room = Room.objects.create(name=f"crowd-{members}", host=me)
        users = User.objects.bulk_create([User(username=f"u{members}-{i}") for i in range(members)])
        Membership.objects.bulk_create([Membership(room=room, user=user) for user in users])
        author = users[0]

        def post(counter: bool, room: Room = room, author: User = author) -> None:
            with transaction.atomic():
                services.message_store(room_id=room.pk, author=author, text="hi")
                if counter:  # the column is not in the model: raw SQL, as the counter option would need anyway
                    with connection.cursor() as cursor:
                        cursor.execute(
                            "UPDATE chat_membership SET unread_counter = unread_counter + 1 WHERE room_id = %s AND user_id <> %s",
                            [room.pk, author.pk],
                        )

        print(
            f"post in a room of {members} members: as today {median_ms(lambda: post(False), 50)} ms,"
            f" with the counter {median_ms(lambda: post(True), 50)} ms"
        )


if __name__ == "__main__":
    main()
