"""The demo-data generator: each domain adds its step; `liaison demo-data` runs them in order.

Steps are deterministic for a given seed (random.Random(seed) passed down), so screenshots and
benchmarks see the same practice every time. Everything is synthetic: no real person or NPI record.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

# Later domains append their steps (referral history, outreach activities, market data ...).
DEMO_STEPS = [
    "liaison.directory.demo.generate",
    "liaison.accounts.demo.generate",
    "liaison.outreach.demo.generate",
    "liaison.feedback.demo.generate",
    "liaison.referrals.demo.generate",
    "liaison.marketdata.demo.generate",
    "liaison.campaigns.demo.generate",
    "liaison.analytics.demo.generate",
]

DEMO_ACTOR = "demo-data"


@dataclass
class DemoContext:
    """Shared between steps: what earlier steps created, for later ones to build on."""

    rng: random.Random
    today: Any
    scale: float = 1.0
    data: dict[str, Any] = field(default_factory=dict)


def steps() -> list[Callable[[DemoContext], str]]:
    out = []
    for path in DEMO_STEPS:
        module, _, name = path.rpartition(".")
        out.append(getattr(import_module(module), name))
    return out
