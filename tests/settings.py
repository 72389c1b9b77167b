"""Test settings: the real settings, with jobs run inline and plain static files.

The database comes from DATABASE_URL like in production: `make test` runs the suite once on
SQLite and once on PostgreSQL.
"""

import os

os.environ.setdefault("STATICFILES_STORAGE", "django.contrib.staticfiles.storage.StaticFilesStorage")
os.environ.setdefault("IDLE_TIMEOUT_MINUTES", "15")

from liaison.settings import *  # noqa: F403

TASKS = {
    "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
    "database": {"BACKEND": "django_tasks_db.DatabaseBackend"},
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]  # noqa: F405 (speed)
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    DATABASES["default"]["ENGINE"] = "tests.postgresql"  # noqa: F405 (the stock backend, a cheaper flush)
LOGGING["root"]["level"] = "WARNING"  # noqa: F405

import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="liaison-test-media-"))
