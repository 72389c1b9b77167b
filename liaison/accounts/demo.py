"""Demo users: one per role, all with the same printed password (a demo, never production)."""

from __future__ import annotations

from liaison.accounts import services
from liaison.accounts.models import Role
from liaison.core.demo import DEMO_ACTOR, DemoContext

DEMO_PASSWORD = "liaison-demo-2026"
DEMO_USERS = [
    ("admin@liaison.example", "Alex Admin", Role.ADMIN),
    ("manager@liaison.example", "Morgan Manager", Role.MANAGER),
    ("liaison@liaison.example", "Lee Liaison", Role.LIAISON),
    ("coordinator@liaison.example", "Casey Coordinator", Role.COORDINATOR),
    ("physician@liaison.example", "", Role.PHYSICIAN),
    ("analyst@liaison.example", "Avery Analyst", Role.ANALYST),
]


def generate(ctx: DemoContext) -> str:
    users = {}
    for email, name, role in DEMO_USERS:
        provider = ctx.data["our_physicians"][0] if role == Role.PHYSICIAN else None
        users[role] = services.create_user(
            actor=DEMO_ACTOR,
            email=email,
            full_name=name or f"Dr {provider.first_name} {provider.last_name}",
            role=role,
            password=DEMO_PASSWORD,
            provider=provider,
            validate=False,
        )
    ctx.data["users"] = users
    return f"accounts: {len(users)} demo users, one per role"
