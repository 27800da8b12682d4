"""Writing a group of rows in few statements.

A run writes its ledger and records a group of messages at a time; on that path Django's
``bulk_create`` and ``bulk_update`` cost more in building their statements than the writes do.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db import connection, models
from django.utils import timezone

M = TypeVar("M", bound=models.Model)

# Fields whose Python values (str, int, bool, None) the database drivers take as they are.
_PLAIN = (models.CharField, models.TextField, models.IntegerField, models.BooleanField, models.ForeignKey)


def _preparer(field: models.Field) -> Callable[[Any], Any] | None:
    """What turns the field's value into the driver's; None when the value goes as it is."""
    if isinstance(field, _PLAIN):
        return None
    prepare = functools.partial(field.get_db_prep_save, connection=connection)
    if isinstance(field, models.DateTimeField):
        # The rows of a group share their timestamps, and converting one costs more than writing it.
        return functools.lru_cache(maxsize=4)(prepare)
    return prepare


def _params_of(fields: Sequence[models.Field]) -> Callable[[models.Model], Sequence[Any]]:
    """The driver's values of ``fields`` for an instance, in order."""
    values = operator.attrgetter(*[field.attname for field in fields])
    if len(fields) == 1:
        single = values
        values = lambda obj: (single(obj),)  # noqa: E731 - attrgetter of one name gives no tuple
    converting = [(i, to_db) for i, field in enumerate(fields) if (to_db := _preparer(field)) is not None]
    if not converting:
        return values

    def converted(obj: models.Model) -> list[Any]:
        params = list(values(obj))
        for i, to_db in converting:
            params[i] = to_db(params[i])
        return params

    return converted


@functools.cache
def _defaults(model: type[models.Model]) -> list[tuple[str, Callable[[], Any] | None, Any]]:
    """(attname, default maker or None, constant default) of each concrete field, in order."""
    made = []
    for field in model._meta.concrete_fields:
        if callable(field.default):
            made.append((field.attname, field.get_default, None))
        else:
            made.append((field.attname, None, field.get_default()))
    return made


def unsaved(model: type[M], **values: Any) -> M:
    """``model(**values)`` for attribute names (``run_id``, not ``run``): built positionally, as
    Django builds the rows it reads, since its keyword path costs most of a group's ledger time."""
    return model(*[values[name] if name in values else (make() if make else default)
                   for name, make, default in _defaults(model)])


def update_rows(rows: Sequence[models.Model], fields: Sequence[str]) -> None:
    """Save ``fields`` of ``rows`` (instances of one model): one statement, executed for each row."""
    if not rows:
        return
    meta, quote = rows[0]._meta, connection.ops.quote_name
    model_fields = [meta.get_field(name) for name in fields]
    params = _params_of([*model_fields, meta.pk])
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in model_fields)
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"  # noqa: S608 - names from the model
    with connection.cursor() as cursor:
        cursor.executemany(sql, [params(row) for row in rows])


def insert_rows(objs: Sequence[models.Model], chunk: int = 50, keys: bool = True) -> None:
    """INSERT unsaved instances of one model, as ``bulk_create`` does (``auto_now`` fields the time
    of the call; with ``keys``, primary keys set on them), in one statement per ``chunk`` of them."""
    if not objs:
        return
    meta, quote = objs[0]._meta, connection.ops.quote_name
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    stamped = [field.attname for field in fields
               if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)]
    now = timezone.now()
    for obj in objs:
        for name in stamped:
            setattr(obj, name, now)
    params_of = _params_of(fields)
    columns = ", ".join(quote(field.column) for field in fields)
    placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
    for start in range(0, len(objs), chunk):
        part = objs[start : start + chunk]
        sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {', '.join([placeholders] * len(part))}"  # noqa: S608 - names from the model
        params = [value for obj in part for value in params_of(obj)]
        with connection.cursor() as cursor:
            if not keys:
                cursor.execute(sql, params)
                continue
            cursor.execute(f"{sql} RETURNING {quote(meta.pk.column)}", params)
            inserted = [row[0] for row in cursor.fetchall()]
        for obj, key in zip(part, inserted, strict=True):
            obj.pk = key
            obj._state.adding, obj._state.db = False, connection.alias
