from django.apps import AppConfig


class InteropConfig(AppConfig):
    name = "liaison.interop"
    label = "interop"
    verbose_name = "Intake (HL7, FHIR, file imports)"

    def ready(self) -> None:
        from liaison.interop import tasks  # noqa: F401  (registers the clean-up of uploads and raw messages)
