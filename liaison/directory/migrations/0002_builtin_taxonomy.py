"""The common specialties, so that a new install (and the demo) works before the full NUCC import."""

import csv
from pathlib import Path

from django.db import migrations

BUILTIN = Path(__file__).resolve().parent.parent / "data" / "common_taxonomies.csv"


def load(apps, schema_editor):
    Taxonomy = apps.get_model("directory", "Taxonomy")
    with BUILTIN.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            Taxonomy.objects.get_or_create(
                code=row["Code"],
                defaults={
                    "grouping": row["Grouping"],
                    "classification": row["Classification"],
                    "specialization": row["Specialization"],
                    "display_name": row["Display Name"],
                    "section": row["Section"],
                },
            )


class Migration(migrations.Migration):
    dependencies = [("directory", "0001_initial")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
