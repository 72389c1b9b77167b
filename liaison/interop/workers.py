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

    from liaison.core.phi import _fernet
    from liaison.interop.tabular import RowBuilder

    for name, value in values.items():
        setattr(settings, name, value)
    _fernet.cache_clear()
    global _builder
    _builder = RowBuilder(**pickle.loads(builder_state))  # noqa: S301 (our own main process's data)


def build(rows: list[tuple[int, list[Any]]], providers: dict[str, Any]) -> list[Any]:
    """The rows built; each good one comes back as its column values, encrypted (plain lists
    travel between processes far faster than model instances)."""
    from liaison.interop.parallel import encrypt_in_place
    from liaison.interop.rows import Inserter
    from liaison.referrals.models import Referral

    inserter = Inserter(Referral, pre_encrypted=True)
    built = [_builder.build(number, row, providers) for number, row in rows]
    for b in built:
        if b.referral is not None:
            encrypt_in_place(b.referral)
            b.values, b.referral = inserter.values(b.referral), None
    return built
