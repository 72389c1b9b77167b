from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    """Who refers, who is cooling off, what outreach moved referrals, and each role's KPIs."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "liaison.analytics"
    verbose_name = "Analytics"

    def ready(self) -> None:
        from liaison.analytics import tasks  # noqa: F401  (registers the hourly refresh and the weekly digest)
