from django.db import migrations


def seed(apps, schema_editor):
    from liaison.campaigns.starters import STARTER_TEMPLATES

    Template = apps.get_model("campaigns", "Template")
    for t in STARTER_TEMPLATES:
        if not Template.objects.filter(name=t["name"]).exists():
            Template.objects.create(**t)


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
