from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "liaison.campaigns"
    label = "campaigns"
    verbose_name = "Campaigns"

    def ready(self) -> None:
        from liaison.campaigns import tasks  # noqa: F401  (registers the periodic resume job)
