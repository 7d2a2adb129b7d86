"""A post in one round trip on PostgreSQL: `chat_post_message()` (chat/core/services/messages.py).

A post took a transaction of six statements (lock the room, look for the client_id, check
the reply target, advance the seq and the author's read mark, insert), each a round trip
and an ORM query to build, while the room's row stayed locked. This function does the same
steps in the same order under the same lock, called as one autocommitted statement.

It is VOLATILE (the default), so each statement in it takes a fresh snapshot: the
client_id lookup after the lock sees a racing retry that committed while this call waited
for the lock, as the ORM version's separate query did.

It answers an outcome and, when there is one, the message: 'created', 'existing' (the
client_id was already used: that message), or a refusal stored nothing: 'room_not_found',
'banned', 'not_member', 'reply_invalid'. With p_store false it only checks (a post over
the flood limit still learns whether it is a retry): 'allowed' when it would have stored.
A caller that is not a member (p_as_member false: the admin's store) skips the member checks.
Other databases run the ORM version of the same steps.
"""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

POST_MESSAGE_SQL = """
CREATE OR REPLACE FUNCTION chat_post_message(
    p_room bigint, p_user bigint, p_text text, p_client_id text, p_reply_to bigint,
    p_created_at timestamptz, p_as_member boolean, p_store boolean
) RETURNS TABLE (
    outcome text, message_id bigint, message_seq bigint, message_text text, message_client_id text,
    message_created_at timestamptz, message_edited_at timestamptz, message_reply_to bigint
)
LANGUAGE plpgsql AS $$
DECLARE
    v_kind text;
    v_seq bigint;
    v_member boolean;
BEGIN
    SELECT r.kind, r.last_seq,
           EXISTS (SELECT 1 FROM chat_membership m WHERE m.room_id = r.id AND m.user_id = p_user)
      INTO v_kind, v_seq, v_member
      FROM chat_room r WHERE r.id = p_room FOR UPDATE;
    -- A room one cannot see is one that does not exist (a private room of others).
    IF NOT FOUND OR (p_as_member AND NOT v_member AND v_kind <> 'public') THEN
        RETURN QUERY SELECT 'room_not_found', NULL::bigint, NULL::bigint, NULL::text, NULL::text,
                            NULL::timestamptz, NULL::timestamptz, NULL::bigint;
        RETURN;
    END IF;
    IF p_client_id IS NOT NULL THEN
        RETURN QUERY SELECT 'existing', m.id, m.seq::bigint, m.text::text, m.client_id::text,
                            m.created_at, m.edited_at, m.reply_to::bigint
                       FROM chat_message m
                      WHERE m.room_id = p_room AND m.user_id = p_user AND m.client_id = p_client_id;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;
    IF p_as_member AND NOT v_member THEN
        RETURN QUERY SELECT CASE WHEN EXISTS (SELECT 1 FROM chat_ban b WHERE b.room_id = p_room AND b.user_id = p_user)
                                 THEN 'banned' ELSE 'not_member' END,
                            NULL::bigint, NULL::bigint, NULL::text, NULL::text,
                            NULL::timestamptz, NULL::timestamptz, NULL::bigint;
        RETURN;
    END IF;
    IF p_reply_to IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM chat_message m WHERE m.id = p_reply_to AND m.room_id = p_room) THEN
        RETURN QUERY SELECT 'reply_invalid', NULL::bigint, NULL::bigint, NULL::text, NULL::text,
                            NULL::timestamptz, NULL::timestamptz, NULL::bigint;
        RETURN;
    END IF;
    IF NOT p_store THEN
        RETURN QUERY SELECT 'allowed', NULL::bigint, NULL::bigint, NULL::text, NULL::text,
                            NULL::timestamptz, NULL::timestamptz, NULL::bigint;
        RETURN;
    END IF;
    v_seq := v_seq + 1;
    UPDATE chat_room SET last_seq = v_seq WHERE id = p_room;
    -- Your own post is read (api_docs/PROTOCOL.md §6).
    UPDATE chat_membership SET last_read_seq = v_seq
     WHERE room_id = p_room AND user_id = p_user AND last_read_seq < v_seq;
    RETURN QUERY
        INSERT INTO chat_message AS m (room_id, seq, user_id, text, client_id, created_at, edited_at, reply_to)
        VALUES (p_room, v_seq, p_user, p_text, p_client_id, p_created_at, NULL, p_reply_to)
        RETURNING 'created', m.id, m.seq::bigint, m.text::text, m.client_id::text,
                  m.created_at, m.edited_at, m.reply_to::bigint;
END
$$
"""
DROP_POST_MESSAGE_SQL = "DROP FUNCTION IF EXISTS chat_post_message(bigint, bigint, text, text, bigint, timestamptz, boolean, boolean)"


def create_post_function(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POST_MESSAGE_SQL)


def drop_post_function(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_POST_MESSAGE_SQL)


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0004_replies_reactions_search"),
    ]

    operations = [
        migrations.RunPython(create_post_function, drop_post_function, elidable=False),
    ]
