"""What runs in the import's worker processes (see liaison.interop.parallel).

This module imports nothing of Django at import time: a spawned worker loads it before Django is
set up, then `start` sets Django up with the main process's keys.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

_builder: Any = None


def start(settings_module: str, values: dict[str, Any], builder_state: bytes) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    import django

    django.setup()
    from django.conf import settings

    from liaison.core.phi import _keys
    from liaison.interop.tabular import RowBuilder

    for name, value in values.items():
        setattr(settings, name, value)
    _keys.cache_clear()
    global _builder
    _builder = RowBuilder(**pickle.loads(builder_state))  # noqa: S301 (our own main process's data)


def build(rows: list[tuple[int, list[Any]]], providers: dict[str, Any]) -> list[Any]:
    """The rows built; each good one comes back as its column values, encrypted and ready to
    insert (plain lists travel between processes far faster than model instances)."""
    from liaison.interop.parallel import as_values

    return as_values([_builder.build(number, row, providers) for number, row in rows])
