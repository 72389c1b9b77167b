from django.apps import AppConfig


class DirectoryConfig(AppConfig):
    name = "liaison.directory"
    label = "directory"
    verbose_name = "Directory"
