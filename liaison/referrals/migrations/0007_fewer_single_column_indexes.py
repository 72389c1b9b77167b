"""Drop the single-column indexes that a composite index already starts with (status, the
referring provider, the site and the assignee of a referral; the referral of a history row),
and the index of every referral's "referrer to match" flag: queries only ask for the flagged
ones, which the partial index "referral_to_match" holds.
Every index costs every insert; these served no query the composite ones do not. On
PostgreSQL also the `varchar_pattern_ops` twins of the blind-index columns (patient_key,
patient_name_key, mrn_key), made for LIKE 'prefix%' searches: keyed hashes are only ever
compared whole.

The fields change in the migration state only; the database drops just the indexes (Django's
AlterField would rebuild the whole referral table on SQLite, once per field)."""

from typing import Any

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

DROPPED = [
    ("referral", "status"),
    ("referral", "referrer_to_match"),
    ("referral", "referring_provider"),
    ("referral", "site"),
    ("referral", "assigned_to"),
    ("referralevent", "referral"),
]


LIKE_ONLY = ["patient_key", "patient_name_key", "mrn_key"]


def _existing_indexes(schema_editor: Any, model: Any, column: str, suffixes: tuple[str, ...]) -> list[str]:
    """The indexes Django made for the column with these name suffixes ("_like": the PostgreSQL
    `varchar_pattern_ops` twin), by name."""
    table = model._meta.db_table
    with schema_editor.connection.cursor() as cursor:
        existing = schema_editor.connection.introspection.get_constraints(cursor, table)
    names = [schema_editor._create_index_name(table, [column], suffix=s) for s in suffixes]
    return [name for name in names if name in existing]


def drop_indexes(apps: Any, schema_editor: Any) -> None:
    referral = apps.get_model("referrals", "referral")
    targets = [
        (model, model._meta.get_field(field_name).column, ("", "_like"))
        for model, field_name in ((apps.get_model("referrals", m), f) for m, f in DROPPED)
    ]
    targets += [(referral, referral._meta.get_field(f).column, ("_like",)) for f in LIKE_ONLY]
    for model, column, suffixes in targets:
        for name in _existing_indexes(schema_editor, model, column, suffixes):
            schema_editor.execute(schema_editor._delete_index_sql(model, name))


def create_indexes(apps: Any, schema_editor: Any) -> None:
    postgresql = schema_editor.connection.vendor == "postgresql"
    for model_name, field_name in DROPPED:
        model = apps.get_model("referrals", model_name)
        field = model._meta.get_field(field_name)
        schema_editor.execute(schema_editor._create_index_sql(model, fields=[field]))
        if postgresql and isinstance(field, models.CharField):
            schema_editor.execute(schema_editor._create_like_index_sql(model, field))
    if postgresql:
        referral = apps.get_model("referrals", "referral")
        for field_name in LIKE_ONLY:
            schema_editor.execute(schema_editor._create_like_index_sql(referral, referral._meta.get_field(field_name)))


class Migration(migrations.Migration):
    dependencies = [
        ("directory", "0003_provider_email"),
        ("referrals", "0006_queue_rank"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_indexes, create_indexes)],
            state_operations=[
                migrations.AlterField(
                    model_name="referral",
                    name="assigned_to",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="assigned_referrals",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="referral",
                    name="referring_provider",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="referrals_sent",
                        to="directory.provider",
                    ),
                ),
                migrations.AlterField(
                    model_name="referral",
                    name="site",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        limit_choices_to={"practice__is_ours": True},
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="referrals_received",
                        to="directory.location",
                        verbose_name="our site",
                    ),
                ),
                migrations.AlterField(
                    model_name="referral",
                    name="referrer_to_match",
                    field=models.BooleanField(default=False),
                ),
                migrations.AlterField(
                    model_name="referral",
                    name="status",
                    field=models.CharField(
                        choices=[
                            ("received", "Received"),
                            ("accepted", "Accepted"),
                            ("declined", "Declined"),
                            ("scheduled", "Scheduled"),
                            ("seen", "Seen"),
                            ("no_show", "No-show"),
                            ("cancelled", "Cancelled"),
                            ("note_sent", "Consult note sent"),
                            ("closed", "Closed"),
                        ],
                        default="received",
                        max_length=10,
                    ),
                ),
                migrations.AlterField(
                    model_name="referralevent",
                    name="referral",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="referrals.referral",
                    ),
                ),
            ],
        )
    ]
