"""Private and direct rooms, roles, bans and read state (api_docs/PROTOCOL.md §5-§6).

Room.members moves from Django's implicit table to the Membership model: existing
rooms become public, their members get the role `member` (the host `owner`, and a
membership if it had none), and everyone's `last_read_seq` is the room's last seq, so
history from before this migration is not unread.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def copy_memberships(apps, schema_editor):  # type: ignore[no-untyped-def]
    Room = apps.get_model("chat", "Room")
    Membership = apps.get_model("chat", "Membership")
    through = Room.members.through
    rooms = dict(Room.objects.values_list("pk", "last_seq"))
    hosts = dict(Room.objects.values_list("pk", "host_id"))
    pairs = set(through.objects.values_list("room_id", "user_id")) | set(hosts.items())
    batch = [
        Membership(
            room_id=room_id,
            user_id=user_id,
            role="owner" if hosts[room_id] == user_id else "member",
            last_read_seq=rooms[room_id],
        )
        for room_id, user_id in pairs
    ]
    Membership.objects.bulk_create(batch, batch_size=5000)


def copy_memberships_back(apps, schema_editor):  # type: ignore[no-untyped-def]
    Room = apps.get_model("chat", "Room")
    Membership = apps.get_model("chat", "Membership")
    through = Room.members.through
    pairs = Membership.objects.values_list("room_id", "user_id")
    through.objects.bulk_create([through(room_id=room_id, user_id=user_id) for room_id, user_id in pairs], batch_size=5000)


def _replace_seq_constraint(schema_editor, include: str) -> None:  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite has no unique constraints with non-key columns: it keeps the plain one
    schema_editor.execute(
        "ALTER TABLE chat_message DROP CONSTRAINT message_room_seq_unique, "
        f"ADD CONSTRAINT message_room_seq_unique UNIQUE (room_id, seq){include}"
    )


def seq_index_with_author(apps, schema_editor):  # type: ignore[no-untyped-def]
    _replace_seq_constraint(schema_editor, " INCLUDE (user_id)")


def seq_index_without_author(apps, schema_editor):  # type: ignore[no-untyped-def]
    _replace_seq_constraint(schema_editor, "")


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="room",
            name="kind",
            field=models.CharField(
                choices=[("public", "Public"), ("private", "Private"), ("direct", "Direct")], default="public", max_length=16
            ),
        ),
        migrations.AddField(
            model_name="room",
            name="direct_key",
            field=models.CharField(blank=True, editable=False, max_length=64, null=True, unique=True),
        ),
        migrations.CreateModel(
            name="Membership",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "role",
                    models.CharField(
                        choices=[("owner", "Owner"), ("moderator", "Moderator"), ("member", "Member")], default="member", max_length=16
                    ),
                ),
                ("joined_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("last_read_seq", models.PositiveBigIntegerField(default=0)),
                (
                    "room",
                    models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="memberships", to="chat.room"),
                ),
                (
                    "user",
                    models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="memberships", to=settings.AUTH_USER_MODEL),
                ),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("room", "user"), name="membership_room_user_unique")],
                "indexes": [models.Index(fields=["user", "room"], name="membership_user_room")],
            },
        ),
        migrations.CreateModel(
            name="Ban",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("room", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="bans", to="chat.room")),
                (
                    "user",
                    models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="bans", to=settings.AUTH_USER_MODEL),
                ),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("room", "user"), name="ban_room_user_unique")],
            },
        ),
        migrations.RunPython(copy_memberships, copy_memberships_back),
        # The implicit table goes; the same relation now runs through Membership.
        migrations.RemoveField(model_name="room", name="members"),
        migrations.AddField(
            model_name="room",
            name="members",
            field=models.ManyToManyField(blank=True, related_name="rooms", through="chat.Membership", to=settings.AUTH_USER_MODEL),
        ),
        # PostgreSQL only (the model's state is unchanged): the (room, seq) constraint's index also
        # carries the author, so "messages after seq by others" (unread counts) is an index-only scan.
        migrations.RunPython(seq_index_with_author, seq_index_without_author, elidable=False),
    ]
