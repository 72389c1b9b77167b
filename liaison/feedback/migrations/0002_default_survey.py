from django.db import migrations

QUESTIONS = [
    {"key": "ease", "text": "How easy is it to refer a patient to us?"},
    {"key": "speed", "text": "How quickly are your patients seen?"},
    {"key": "communication", "text": "How well do we keep you informed (consult notes, updates)?"},
    {"key": "staff", "text": "How courteous and helpful is our staff?"},
]


def seed(apps, schema_editor):
    Survey = apps.get_model("feedback", "Survey")
    if not Survey.objects.exists():
        Survey.objects.create(
            title="How are we doing for your patients?",
            intro="Two minutes, five questions. Your answers go to our physician relations team.",
            questions=QUESTIONS,
        )


class Migration(migrations.Migration):
    dependencies = [("feedback", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
