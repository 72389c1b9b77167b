"""The `liaison` command: demo data, deploy checks, help texts."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from liaison.accounts.models import User
from liaison.audit.services import verify_chain
from liaison.directory.models import Contact, Practice, Provider
from liaison.referrals.models import Notification, Referral

PRODUCTION_ENV = {
    "SECRET_KEY": "x" * 20 + "production-secret-key-from-the-environment-0123456789",
    "PHI_KEYS": Fernet.generate_key().decode(),
    "PHI_INDEX_KEY": "index-key-from-the-environment-0123456789abcdef",
    "DATABASE_URL": "postgres://liaison:secret@db.internal:5432/liaison",
    "EMAIL_URL": "smtp+tls://mailer:secret@smtp.example.org:587",
    "ALLOWED_HOSTS": "liaison.example.org",
    "LIAISON_TLS": "true",
    "MFA_REQUIRED_ROLES": "admin,manager,coordinator,physician",
}


def run_liaison(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in PRODUCTION_ENV and k not in ("DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE")
    }
    return subprocess.run(
        [sys.executable, "-m", "liaison", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings():
    result = run_liaison("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_names_what_a_laptop_install_lacks():
    result = run_liaison("check", "--deploy")
    for check in ("liaison.W001", "liaison.W002", "liaison.W003", "liaison.W004", "liaison.W005"):
        assert check in result.stderr


def test_the_liaison_command_lists_its_own_commands():
    out = run_liaison("help").stdout
    for name in ("demo_data", "import", "audit", "worker", "serve", "assets"):
        assert name in out
    import_help = run_liaison("import", "taxonomy", "--help").stdout
    assert "--download" in import_help and "NUCC" in import_help


@pytest.mark.django_db
def test_demo_data_is_deterministic_complete_and_audited(capsys):
    def load() -> list[str]:
        call_command("demo_data", "--seed", "7", "--scale", "0.2")
        return list(Provider.objects.order_by("npi").values_list("npi", "last_name"))

    with transaction.atomic():
        first = load()
        transaction.set_rollback(True)
    second = load()
    assert first == second
    assert Practice.objects.ours().count() == 1
    assert Practice.objects.referring().filter(source="demo").count() == 24  # market data adds NPPES ones
    assert Provider.objects.ours().count() == 8
    assert Contact.objects.filter(role="referral_coordinator").exists()
    assert set(User.objects.values_list("role", flat=True)) == {
        "admin",
        "manager",
        "liaison",
        "coordinator",
        "physician",
        "analyst",
    }
    assert User.objects.get(role="physician").provider.is_ours
    # No patient is named like a person the pages show, so a patient's name found on a page is a leak.
    people = {
        f"{first} {last}".strip()
        for model in (Provider, Contact)
        for first, last in model.objects.values_list("first_name", "last_name")
    }
    patients = {r.patient_name for r in Referral.objects.all()}
    assert patients and not patients & people
    # The offices were told of each step as it happened, not when the demo was loaded.
    told = Notification.objects.select_related("event")
    assert told.exists() and all(n.created_at - n.event.at < timedelta(hours=2) for n in told)
    # Each referral moved on as a coordinator would have moved it: none waits on an appointment long past.
    assert not Referral.objects.filter(
        status="scheduled", appointment_at__lt=timezone.now() - timedelta(days=2)
    ).exists()
    result = verify_chain()
    assert result.ok and result.checked > 200
    out = capsys.readouterr().out
    assert "liaison@liaison.example" in out and "password for all:" in out
    call_command("demo_data")
    assert "already loaded" in capsys.readouterr().out
    assert Practice.objects.referring().filter(source="demo").count() == 24  # market data adds NPPES ones
