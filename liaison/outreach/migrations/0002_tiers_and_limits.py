"""Starting tiers with their cadence, and the CMS non-monetary compensation limits.

The limits are published by CMS each year (physician self-referral, "CPI-U updates"):
$507 for 2024, $521 for 2025, $535 for 2026. The admin adds later years on the ledger page.
"""

from decimal import Decimal

from django.db import migrations

TIERS = [
    ("A", "Key account", "High referral value or potential: see them monthly, feed them quarterly.", 1,
     [("in_person", 30, "day"), ("lunch", 1, "quarter")]),
    ("B", "Growth account", "Refers sometimes or could refer more.", 2,
     [("in_person", 60, "day"), ("lunch", 2, "quarter")]),
    ("C", "Maintain", "Low volume: keep in touch.", 3, [("any", 90, "day")]),
]
LIMITS = [
    (2024, Decimal("507.00"), "CMS non-monetary compensation limit for CY 2024"),
    (2025, Decimal("521.00"), "CMS non-monetary compensation limit for CY 2025"),
    (2026, Decimal("535.00"), "CMS non-monetary compensation limit for CY 2026"),
]


def seed(apps, schema_editor):
    Tier = apps.get_model("outreach", "Tier")
    CadenceRule = apps.get_model("outreach", "CadenceRule")
    CompensationLimit = apps.get_model("outreach", "CompensationLimit")
    for code, name, description, rank, rules in TIERS:
        tier, created = Tier.objects.get_or_create(
            code=code, defaults={"name": name, "description": description, "rank": rank}
        )
        if created:
            for touch, every, unit in rules:
                CadenceRule.objects.create(tier=tier, touch=touch, every=every, unit=unit)
    for year, amount, note in LIMITS:
        CompensationLimit.objects.get_or_create(year=year, defaults={"amount": amount, "note": note})


class Migration(migrations.Migration):
    dependencies = [("outreach", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
