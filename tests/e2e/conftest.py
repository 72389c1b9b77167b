"""Browser tests: Debian's chromium driven by Playwright against a live server.

Playwright's own browser download does not work on closed networks, so the system chromium
is used. Without it these tests skip, unless LIAISON_REQUIRE_BROWSER=1 (CI) makes that a failure.

A test that needs the demo data takes the `demo` fixture rather than running demo-data itself:
the demo is loaded once per session (half a minute on SQLite, a minute on PostgreSQL) and each
test gets a fresh copy of it in about a second.
"""

import io
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; the ORM calls made by the test
# itself (fixtures, assertions) are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
]


def _chromium() -> str | None:
    for candidate in (
        os.environ.get("CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(scope="session")
def browser():
    executable = _chromium()
    if executable is None:
        message = "chromium is not installed (Debian: apt-get install chromium)"
        if os.environ.get("LIAISON_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def phone(browser, live_server):
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


class DatabaseCopy:
    """Every table's rows, taken once and put back in about a second: SQLite's backup API for the
    in-memory test database, COPY on PostgreSQL (foreign keys are checked at commit, so the order
    of the tables does not matter)."""

    def __init__(self) -> None:
        from django.db import connection

        connection.ensure_connection()
        self.vendor = connection.vendor
        if self.vendor == "sqlite":
            self.sqlite = sqlite3.connect(":memory:", check_same_thread=False)
            connection.connection.backup(self.sqlite)
            return
        self.tables = {}
        with connection.cursor() as cursor:
            for table in connection.introspection.django_table_names(only_existing=True, include_views=False):
                with cursor.cursor.copy(f"COPY {connection.ops.quote_name(table)} TO STDOUT") as copy:
                    self.tables[table] = b"".join(bytes(block) for block in copy)

    def restore(self) -> None:
        from django.apps import apps
        from django.contrib.contenttypes.models import ContentType
        from django.core.management.color import no_style
        from django.db import connection, transaction

        connection.ensure_connection()
        if self.vendor == "sqlite":
            self.sqlite.backup(connection.connection)
        else:
            with transaction.atomic(), connection.cursor() as cursor:
                for sql in connection.ops.sql_flush(no_style(), list(self.tables)):
                    cursor.execute(sql)
                for table, rows in self.tables.items():
                    if rows:
                        with cursor.cursor.copy(
                            f"COPY {connection.ops.quote_name(table)} FROM STDIN"
                        ) as copy:
                            copy.write(rows)
                models = apps.get_models(include_auto_created=True)
                for sql in connection.ops.sequence_reset_sql(no_style(), models):
                    cursor.execute(sql)
        ContentType.objects.clear_cache()  # the copy's ids, not those made since


@pytest.fixture(scope="session")
def _demo_copy(django_db_setup, django_db_blocker):
    """`liaison demo-data` run once per session (it takes half a minute and more), in the state a
    browser test starts from: what it printed, and a copy of the database right after it."""
    from django.core.management import call_command

    from liaison.directory.models import Taxonomy
    from liaison.directory.taxonomy import load_builtin

    with django_db_blocker.unblock():
        if not Taxonomy.objects.exists():  # as tests/conftest.py's _reference_data does
            load_builtin()
        out = io.StringIO()
        call_command("demo_data", stdout=out)
        return out.getvalue(), DatabaseCopy()


@pytest.fixture
def demo(transactional_db, _demo_copy):
    """The demo data, fresh for each test (a copy of the one load); returns what demo-data printed."""
    printed, copy = _demo_copy
    copy.restore()
    return printed
