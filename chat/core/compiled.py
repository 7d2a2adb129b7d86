"""ORM queries compiled to SQL once per process, then run again with other parameter values.

Building a queryset and compiling it (resolving its expressions, subqueries and joins)
costs the server several times the CPU that PostgreSQL spends running it: the
queries of a join (its checks, the room, the visibility of a subscription) were most
of the server's CPU per joining client. Their SQL never changes, only their values do.

A `CompiledQuery` is defined by an ORM builder, so the ORM stays the one definition of
the query (and of rules such as `selectors.rooms_visible_to`). The builder is compiled
once, with stand-in values ("sentinels") for its arguments; each later call runs that
SQL with the stand-ins replaced, and decodes the rows as `QuerySet.values()` does (the
same names, the same converters). Anywhere the shortcut is not known to hold (not
PostgreSQL, or a stand-in the compiled parameters do not show exactly) the builder's
queryset is simply evaluated.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import QuerySet

from chat.core.db import fetch_all_prepared


@dataclass(frozen=True)
class _Plan:
    sql: str
    # Per parameter: the argument it stands for, or None for a constant of the query (with its value).
    params: tuple[tuple[str | None, Any], ...]
    names: tuple[str, ...]
    converters: tuple[tuple[int, tuple[Any, ...], Any], ...]  # (column, converter functions, expression)


class CompiledQuery:
    """A `.values()` query compiled once; `rows(**arguments)` runs it like `list(build(**arguments))`."""

    def __init__(self, build: Callable[..., "QuerySet[Any, Any]"], **sentinels: Any) -> None:
        # Each stand-in must be a value the real arguments never equal and no constant of the
        # query equals: negative ids, datetimes of 1901.
        self.build = build
        self.sentinels = sentinels
        self.plan: _Plan | None = None
        self.unusable = False

    def rows(self, **arguments: Any) -> list[dict[str, Any]]:
        embedded = self.embedded(**arguments)
        if embedded is None:
            return list(self.build(**arguments))
        # Prepared, parameters sent apart: Django's cursor would quote every value into the
        # SQL text on the client, and PostgreSQL would parse and plan it again each time.
        return [self.decode(row) for row in fetch_all_prepared(*embedded)]

    def embedded(self, **arguments: Any) -> tuple[str, list[Any]] | None:
        """The compiled SQL and its parameters, to run as they are or inside a bigger statement (a CTE); None: not compiled, use rows()."""
        plan = self._plan()
        if plan is None:
            return None
        return plan.sql, [arguments[name] if name is not None else value for name, value in plan.params]

    def decode(self, row: Sequence[Any]) -> dict[str, Any]:
        """A row of the compiled query's columns, in their order (a bigger statement's may follow them), as rows() gives it."""
        assert self.plan is not None  # only rows of embedded()'s SQL are decoded
        values = list(row[: len(self.plan.names)])
        if self.plan.converters:
            values = self._convert(values, self.plan.converters)
        return dict(zip(self.plan.names, values, strict=True))

    def first(self, **arguments: Any) -> dict[str, Any] | None:
        """The first row or None (the builder gives at most one, e.g. by a primary key or a slice)."""
        rows = self.rows(**arguments)
        return rows[0] if rows else None

    @staticmethod
    def _convert(row: list[Any], converters: tuple[tuple[int, tuple[Any, ...], Any], ...]) -> list[Any]:
        # As SQLCompiler.apply_converters, with this thread's connection.
        for position, functions, expression in converters:
            value = row[position]
            for function in functions:
                value = function(value, expression, connection)
            row[position] = value
        return row

    def _plan(self) -> _Plan | None:
        if self.unusable or connection.vendor != "postgresql":
            return None
        if self.plan is None:
            # Compiled at most a few times if threads race here; every result is the same.
            self.plan = self._compile()
            self.unusable = self.plan is None
        return self.plan

    def _compile(self) -> _Plan | None:
        queryset = self.build(**self.sentinels)
        query = queryset.query
        if query.extra_select:
            return None
        compiler = query.get_compiler(using=queryset.db)
        sql, compiled_params = compiler.as_sql()
        params: list[tuple[str | None, Any]] = []
        seen: set[str] = set()
        for value in compiled_params:
            matches = [name for name, sentinel in self.sentinels.items() if type(value) is type(sentinel) and value == sentinel]
            if len(matches) > 1:
                return None
            params.append((matches[0], None) if matches else (None, value))
            seen.update(matches)
        if seen != set(self.sentinels):  # an argument the SQL does not take as a plain parameter
            return None
        # The row's names as ValuesIterable gives them.
        names = tuple(query.selected) if query.selected else (*query.values_select, *query.annotation_select)
        fields = [column[0] for column in compiler.select[: compiler.col_count]]
        if len(fields) != len(names):
            return None
        converters = tuple(
            (position, tuple(functions), expression) for position, (functions, expression) in compiler.get_converters(fields).items()
        )
        return _Plan(sql=sql, params=tuple(params), names=names, converters=converters)
