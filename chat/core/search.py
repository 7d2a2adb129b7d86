"""How message text is matched against a search query, per database (api_docs/PROTOCOL.md §7 search_messages).

PostgreSQL: full-text search on the GIN-indexed `search_vector` column of migration 0004
(the 'simple' configuration over the unaccented text), with plainto_tsquery's semantics
(every word must appear, in any order; case and accents ignored). Other databases (the embedded SQLite
default): every whitespace-separated word must appear, case-insensitively, as a substring.
"""

from django.db import connection
from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL

from chat.models import Message

# A column of migration 0004's own, not a model field: only PostgreSQL has it.
_TSVECTOR = '"chat_message"."search_vector"'
_TSQUERY = "plainto_tsquery('simple'::regconfig, chat_unaccent(%s))"


def messages_matching(messages: QuerySet[Message], query: str) -> QuerySet[Message]:
    """These messages, narrowed to those whose text matches the query."""
    if connection.vendor == "postgresql":
        return messages.filter(RawSQL(f"{_TSVECTOR} @@ {_TSQUERY}", [query], output_field=BooleanField()))
    return words_matching(messages, query)


def words_matching(messages: QuerySet[Message], query: str) -> QuerySet[Message]:
    """These messages, narrowed to those containing every word of the query, ignoring case (no index)."""
    words = query.split()
    condition = Q()
    for word in words:
        condition &= Q(text__icontains=word)
    return messages.filter(condition) if words else messages.none()
