from django.apps import AppConfig


class ReferralsConfig(AppConfig):
    name = "liaison.referrals"
    label = "referrals"
    verbose_name = "Referrals"

    def ready(self) -> None:
        from liaison.referrals import tasks  # noqa: F401  (registers the periodic service-level check)
