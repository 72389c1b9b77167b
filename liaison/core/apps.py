from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "liaison.core"
    label = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from liaison.core import checks, tasks  # noqa: F401  (registers system checks and periodic jobs)
