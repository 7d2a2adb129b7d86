"""Presence.user, copied from its connection, and the index "is this user present in this room?" takes.

The single-column indexes of presence's connection and room go: the unique constraint and
the new index lead with those columns.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def copy_users(apps, schema_editor):  # type: ignore[no-untyped-def]
    Presence = apps.get_model("chat", "Presence")
    Connection = apps.get_model("chat", "Connection")
    Presence.objects.update(user_id=Subquery(Connection.objects.filter(pk=OuterRef("connection_id")).values("user_id")[:1]))


def user_field(*, null: bool) -> models.ForeignKey:  # type: ignore[type-arg]
    return models.ForeignKey(
        null=null,
        db_constraint=False,
        db_index=False,
        on_delete=django.db.models.deletion.DO_NOTHING,
        related_name="+",
        to=settings.AUTH_USER_MODEL,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0005_post_message_function"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # Nullable until copy_users has filled it.
        migrations.AddField(model_name="presence", name="user", field=user_field(null=True)),
        migrations.RunPython(copy_users, migrations.RunPython.noop),
        migrations.AlterField(model_name="presence", name="user", field=user_field(null=False)),
        migrations.AddIndex(model_name="presence", index=models.Index(fields=["room", "user"], name="presence_room_user")),
        migrations.AlterField(
            model_name="presence",
            name="connection",
            field=models.ForeignKey(
                db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="presences", to="chat.connection"
            ),
        ),
        migrations.AlterField(
            model_name="presence",
            name="room",
            field=models.ForeignKey(
                db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="presences", to="chat.room"
            ),
        ),
    ]
