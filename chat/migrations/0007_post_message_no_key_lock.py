"""chat_post_message() locks the room row FOR NO KEY UPDATE instead of FOR UPDATE.

The post locks its room only to serialize the room's seq among posts; it never deletes the
row or changes its key. FOR UPDATE also conflicts with the FOR KEY SHARE lock that PostgreSQL's
foreign-key check takes on the room for every row inserted against it: each join's membership
and presence, each message. A crowd joining a busy room and its posts waited for one another's
commits. FOR NO KEY UPDATE still excludes a second post (it conflicts with itself), and the
function's own `UPDATE chat_room SET last_seq` takes no stronger lock.
"""

import importlib

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

POST_MESSAGE_FOR_UPDATE_SQL: str = importlib.import_module("chat.migrations.0005_post_message_function").POST_MESSAGE_SQL
ROOM_LOCK, NO_KEY_ROOM_LOCK = "WHERE r.id = p_room FOR UPDATE;", "WHERE r.id = p_room FOR NO KEY UPDATE;"
assert POST_MESSAGE_FOR_UPDATE_SQL.count(ROOM_LOCK) == 1
POST_MESSAGE_SQL = POST_MESSAGE_FOR_UPDATE_SQL.replace(ROOM_LOCK, NO_KEY_ROOM_LOCK)


def lock_without_key(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POST_MESSAGE_SQL)


def lock_for_update(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POST_MESSAGE_FOR_UPDATE_SQL)


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0006_presence_user"),
    ]

    operations = [
        migrations.RunPython(lock_without_key, lock_for_update, elidable=False),
    ]
