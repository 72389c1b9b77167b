from django.apps import AppConfig


class OutreachConfig(AppConfig):
    name = "liaison.outreach"
    label = "outreach"
    verbose_name = "Outreach"

    def ready(self) -> None:
        from liaison.outreach import tasks  # noqa: F401  (registers the daily cadence job)
