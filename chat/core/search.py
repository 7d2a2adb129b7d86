"""How message text is matched against a search query, per database (PROTOCOL.md §7 search_messages).

PostgreSQL: full-text search on the expression GIN index of migration 0004, the 'simple'
configuration over the unaccented text, with plainto_tsquery's semantics (every word must
appear, in any order; case and accents ignored). Other databases (the embedded SQLite
default): every whitespace-separated word must appear, case-insensitively, as a substring.
"""

from django.db import connection
from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL

from chat.models import Message

# Must stay the exact expression of the index in migration 0004, or PostgreSQL cannot use the index.
_TSVECTOR = 'to_tsvector(\'simple\'::regconfig, chat_unaccent("chat_message"."text"))'
_TSQUERY = "plainto_tsquery('simple'::regconfig, chat_unaccent(%s))"


def messages_matching(messages: QuerySet[Message], query: str) -> QuerySet[Message]:
    """These messages, narrowed to those whose text matches the query."""
    if connection.vendor == "postgresql":
        return messages.filter(RawSQL(f"{_TSVECTOR} @@ {_TSQUERY}", [query], output_field=BooleanField()))
    words = query.split()
    condition = Q()
    for word in words:
        condition &= Q(text__icontains=word)
    return messages.filter(condition) if words else messages.none()
