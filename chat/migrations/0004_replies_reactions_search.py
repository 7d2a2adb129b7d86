"""Replies, reactions and full-text search of messages (api_docs/PROTOCOL.md §7).

On PostgreSQL each message gets a stored generated column `search_vector`: the 'simple'
text-search configuration (no stemming or stop words, so words of any language match as
typed) of its text with accents removed, with a GIN index. Stored rather than an index on
the expression: a search for common words walks the newest messages and checks each one,
and recomputing the vector per row made that 300 times slower (bench/README.md, search).
`unaccent()` is only STABLE (its dictionary could change), so a generated column needs an
IMMUTABLE wrapper; chat_unaccent pins the dictionary by name. The column is not a model
field (Django never reads or writes it), so other databases simply do not have it: their
search is a per-word LIKE. Changing the type of chat_message.text later means dropping
and re-adding this column around it.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

SEARCH_SQL = [
    "CREATE EXTENSION IF NOT EXISTS unaccent",
    # Schema-qualified, so the function behaves the same whatever the caller's search_path.
    """CREATE OR REPLACE FUNCTION chat_unaccent(text) RETURNS text
       LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
       AS $$ SELECT public.unaccent('public.unaccent'::regdictionary, $1) $$""",
    """ALTER TABLE chat_message ADD COLUMN search_vector tsvector
       GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, chat_unaccent(text))) STORED""",
    "CREATE INDEX message_text_search ON chat_message USING gin (search_vector)",
    # Ten times the default sample: with the default, a rare or absent word is estimated at
    # hundreds of matches, and the planner walks every message newest first to find none
    # (480 ms at p95 for one million messages) instead of asking the index (3 ms).
    "ALTER TABLE chat_message ALTER COLUMN search_vector SET STATISTICS 1000",
]
UNDO_SEARCH_SQL = [
    "DROP INDEX IF EXISTS message_text_search",
    "ALTER TABLE chat_message DROP COLUMN IF EXISTS search_vector",
    "DROP FUNCTION IF EXISTS chat_unaccent(text)",
]


def create_search_index(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for statement in SEARCH_SQL:
            schema_editor.execute(statement)


def drop_search_index(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for statement in UNDO_SEARCH_SQL:
            schema_editor.execute(statement)


class Migration(migrations.Migration):

    dependencies = [
        ('chat', '0003_server_heartbeat'),
    ]

    operations = [
        migrations.AddField(
            model_name='message',
            name='reply_to',
            field=models.PositiveBigIntegerField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name='Reaction',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('emoji', models.CharField(max_length=32)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('message', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='reactions', to='chat.message')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='reactions', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('message', 'user', 'emoji'), name='reaction_message_user_emoji_unique')],
            },
        ),
        migrations.RunPython(create_search_index, drop_search_index),
    ]
