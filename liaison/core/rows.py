"""Plain INSERTs for bulk writes (the referral import, market data), and fast construction of
unsaved instances.

bulk_create spends most of its time in the ORM's per-value machinery and, on SQLite, splits
the rows into INSERTs of 24 (999 parameters / 41 columns). Here each column's value is prepared
by the field's own method where it needs more than the value itself (encrypted fields encrypt,
JSON is serialised, times are adapted as the ORM does), the ids are reserved first, and the
rows go in one executemany() on SQLite, one COPY on PostgreSQL.

`Blueprint` makes the unsaved instances and checks their fields (remembering the values each
field accepted); `frozen_heap` keeps the garbage collector off the objects that were there before
the bulk work started.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from operator import attrgetter, itemgetter
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connection, connections, models, transaction
from django.db.models.base import ModelState
from django.db.models.expressions import DatabaseDefault
from django.utils import timezone

from liaison.core.phi import EncryptedTextField

_SIMPLE = {
    "AutoField",
    "BigAutoField",
    "BigIntegerField",
    "BooleanField",
    "CharField",
    "ForeignKey",
    "IntegerField",
    "OneToOneField",
    "PositiveIntegerField",
    "PositiveSmallIntegerField",
    "SmallIntegerField",
    "TextField",
}


def _stored_fields(model: type[models.Model]) -> list[models.Field]:
    """The columns an INSERT writes: the concrete fields but those the database generates."""
    return [f for f in model._meta.concrete_fields if not f.generated]


def _preparers(model: type[models.Model]) -> list[tuple[int, Callable[[Any], Any]]]:
    """(column index, how to prepare its value) for the columns that need more than the value."""
    out: list[tuple[int, Callable[[Any], Any]]] = []
    # This thread's connection itself: each attribute read through the `connection` proxy costs
    # a thread-local lookup, and the preparers run for every value.
    conn = connections[DEFAULT_DB_ALIAS]
    for i, f in enumerate(_stored_fields(model)):
        if isinstance(f, EncryptedTextField):
            out.append((i, f.ciphertext))
        elif f.get_internal_type() == "DateTimeField":
            out.append((i, partial(_adapt_datetime, conn.ops.adapt_datetimefield_value)))
        elif f.get_internal_type() not in _SIMPLE:
            out.append((i, partial(f.get_db_prep_save, connection=conn)))
    return out


def _adapt_datetime(adapt: Callable[[Any], Any], value: Any) -> Any:
    return None if value is None else adapt(value)


def _defaults(fields: list[models.Field]) -> list[tuple[str, Any]]:
    """(attname, default) of each field: its default (a callable is called per row), else None
    where the column takes NULL, else the field's empty value."""
    return [
        (f.attname, f.default if f.has_default() else (None if f.null else f.get_default())) for f in fields
    ]


def _filled(defaults: list[tuple[str, Any]], values: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(attname, value) of each field: from `values`, else its default."""
    for name, default in defaults:
        yield name, values[name] if name in values else (default() if callable(default) else default)


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Bulk work that makes objects by the ten thousand: the objects alive when it starts (Django,
    the modules, the caches) are set aside from garbage collection until it ends. Each collection
    of the oldest generation would walk them all; with them frozen, an NPPES import runs ~10%
    faster. What was garbage already is collected after it ends, with the rest."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def in_list(column: str, values: list[Any]) -> tuple[str, list[Any]]:
    """SQL and parameters for `column IN (values)` with a long list: on PostgreSQL
    `column = ANY(%s)` with one array parameter (psycopg binds on the client side, and splitting a
    query of 900 placeholders costs it about 10 ms); `column` is a quoted name."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [list(values)]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", list(values)


def reserve_ids(model: type[models.Model], n: int) -> list[int]:
    """n primary keys nobody else will use."""
    table, pk = model._meta.db_table, model._meta.pk.column
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)", [table, pk, n]
            )
            return [row[0] for row in cursor.fetchall()]
        # SQLite: our transaction holds the write lock (BEGIN IMMEDIATE), so nobody inserts
        # meanwhile; AUTOINCREMENT's counter may be past MAX(id) (deleted rows): never reuse.
        qn = connection.ops.quote_name
        cursor.execute(f"SELECT COALESCE(MAX({qn(pk)}), 0) FROM {qn(table)}")  # noqa: S608 (names)
        start = cursor.fetchone()[0]
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        row = cursor.fetchone()
        start = max(start, row[0] if row else 0)
        return list(range(start + 1, start + n + 1))


class Inserter:
    """The plain INSERT (COPY on PostgreSQL) of one model: rows are lists of values in the
    order of its stored fields (`values(obj)` makes one from an instance; generated columns are
    the database's). `prepare` encrypts and adapts a row's values; it needs no connection, so
    the import's worker processes run it and the main process only inserts."""

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model
        fields = _stored_fields(model)
        self.index = {f.attname: i for i, f in enumerate(fields)}
        self.values_of = attrgetter(*(f.attname for f in fields))
        self.values_in = itemgetter(*(f.attname for f in fields))
        self.pk_index = self.index[model._meta.pk.attname]
        # An automatic key is reserved for each row; any other (an NPI...) comes with the row.
        self.auto_pk = model._meta.pk.get_internal_type() in ("AutoField", "BigAutoField", "SmallAutoField")
        self.auto_times = [
            i
            for i, f in enumerate(fields)
            if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
        ]
        self.preparers = [
            (i, p)
            for i, p in _preparers(model)
            if i not in self.auto_times and not (self.auto_pk and i == self.pk_index)
        ]
        self.defaults = _defaults(fields)
        qn = connection.ops.quote_name
        self.table, self.columns = qn(model._meta.db_table), ", ".join(qn(f.column) for f in fields)
        self.placeholders = ", ".join(["%s"] * len(fields))

    def values(self, obj: Any) -> list[Any]:
        try:  # straight from the instance's dict: reading through the fields' descriptors is slower
            return list(self.values_in(obj.__dict__))
        except KeyError:  # a deferred field
            return list(self.values_of(obj))

    def row(self, values: dict[str, Any]) -> list[Any]:
        """A row from field values by attname, the model's defaults for the others (no
        instance: what an INSERT needs, for a fraction of the cost)."""
        return [value for _, value in _filled(self.defaults, values)]

    def prepare(self, row: list[Any]) -> list[Any]:
        """The row's values as the database takes them (patient fields encrypted), in place."""
        for i, prepare in self.preparers:
            row[i] = prepare(row[i])
        return row

    def insert(self, rows: list[list[Any]], *, prepared: bool = False) -> list[int]:
        """Give the rows ids (returned; an automatic key is reserved) and created/updated times,
        prepare them (unless `prepared`) and insert them."""
        if not rows:
            return []
        assert transaction.get_connection().in_atomic_block, "inserts run inside a transaction"
        now = connection.ops.adapt_datetimefield_value(timezone.now())  # prepared once for all rows
        if self.auto_pk:
            ids = reserve_ids(self.model, len(rows))
        else:
            ids = [row[self.pk_index] for row in rows]
        auto = self.auto_times
        for row, pk in zip(rows, ids, strict=True):
            row[self.pk_index] = pk
            for i in auto:
                row[i] = now
            if not prepared:
                self.prepare(row)
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # COPY: one statement for all the rows (INSERTs sent with client-side binding are
                # each parsed and planned by the server: several times slower).
                with cursor.cursor.copy(f"COPY {self.table} ({self.columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                sql = f"INSERT INTO {self.table} ({self.columns}) VALUES ({self.placeholders})"  # noqa: S608
                cursor.executemany(sql, rows)
        return ids


def insert_rows(model: type[models.Model], objs: list[Any]) -> None:
    """INSERT unsaved instances, which get their ids."""
    inserter = Inserter(model)
    pk_name = model._meta.pk.attname
    for obj, pk in zip(objs, inserter.insert([inserter.values(o) for o in objs]), strict=True):
        setattr(obj, pk_name, pk)
        obj._state.adding, obj._state.db = False, connection.alias  # as bulk_create leaves them


class Blueprint:
    """Unsaved instances of a model filled in directly, with its defaults: a few microseconds
    each instead of the ~20 µs of keyword construction (it adds up over 100k rows). As an
    instance the ORM made from a row, except that nothing has been saved (`_state.adding`); the
    model sends no pre_init/post_init signal (Django's own receivers are for generic relations
    and image fields, which these models do not have)."""

    REMEMBERED = 20_000  # values remembered per field by clean_fields

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model
        fields = _defaults(model._meta.concrete_fields)
        self.attnames = {name for name, _ in fields}
        self.constants = {name: default for name, default in fields if not callable(default)}
        self.callables = [(name, default) for name, default in fields if callable(default)]
        self.relations = {f.name: f for f in model._meta.concrete_fields if f.is_relation}
        self.checked = [f for f in model._meta.fields if not f.generated]
        self.accepted: dict[str, dict[tuple[type, Any], Any]] = {f.name: {} for f in self.checked}
        assert not any(isinstance(f, models.ImageField) for f in model._meta.concrete_fields), (
            "post_init is needed"
        )

    def make(self, **kwargs: Any) -> Any:
        """`model(**kwargs)`, related objects by field name and values by attname, made by `new`."""
        related = {name: kwargs.pop(name) for name in self.relations.keys() & kwargs.keys()}
        if unknown := kwargs.keys() - self.attnames:
            raise TypeError(f"{self.model.__name__} has no field {', '.join(sorted(unknown))}")
        return self.new(kwargs, **related)

    def new(self, values: dict[str, Any], **related: Any) -> Any:
        obj = self.model.__new__(self.model)
        state = obj.__dict__
        state.update(self.constants)
        for name, default in self.callables:
            if name not in values:
                state[name] = default()
        state.update(values)
        obj._state = ModelState()
        for name, related_obj in related.items():
            if related_obj is not None:
                self.relate(obj, name, related_obj)
        return obj

    def relate(self, obj: Any, name: str, related_obj: Any) -> None:
        """`obj.<name> = related_obj` (a foreign key), without the descriptor's checks and
        routing: its id, or None until it is saved, and the object itself in the cache, so that
        validation makes no query and the id can be read once the row is inserted."""
        field = self.relations[name]
        if not isinstance(related_obj, field.related_model):
            raise ValueError(f"{self.model.__name__}.{name} must be a {field.related_model.__name__}")
        obj.__dict__[field.attname] = getattr(related_obj, field.target_field.attname)
        obj._state.fields_cache[name] = related_obj
        if field.one_to_one:
            field.remote_field.set_cached_value(related_obj, obj)

    def clean_fields(self, obj: Any, exclude: frozenset[str] | set[str] = frozenset()) -> None:
        """`obj.clean_fields(exclude)`, remembering the values each field accepted: an import
        checks the same cities, states and credentials thousands of times. A field's check depends
        on the value alone, except a relation's (it looks the row up), which is made every time.
        At the first value refused, the model checks the whole object again for its messages."""
        state = obj.__dict__
        for f in self.checked:
            if f.name in exclude:
                continue
            raw = state[f.attname]
            if f.blank and raw in f.empty_values:
                continue
            if isinstance(raw, DatabaseDefault):
                continue
            accepted = self.accepted[f.name]
            try:
                key = (type(raw), raw)
                cleaned = accepted[key]
            except TypeError:  # unhashable (a list for a JSON field)
                key, cleaned = None, _MISSING
            except KeyError:
                cleaned = _MISSING
            if cleaned is _MISSING:
                try:
                    cleaned = f.clean(raw, obj)
                except ValidationError:
                    obj.clean_fields(exclude=exclude)
                    raise
                if key is not None and not f.is_relation and len(accepted) < self.REMEMBERED:
                    accepted[key] = cleaned
            if type(cleaned) is not type(raw) or cleaned != raw:
                setattr(obj, f.attname, cleaned)


_MISSING = object()
