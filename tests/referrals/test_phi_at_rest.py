"""Patient data is ciphertext in the database and on disk; keys rotate without losing anything."""

import base64
import shutil
import subprocess

import pytest
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from liaison.core.phi import PhiKeyError, decrypt_text
from liaison.referrals import services
from liaison.referrals.models import Referral
from tests.referrals.conftest import PATIENT

SECRETS = [
    PATIENT["patient_last_name"],
    "Zelda",
    "MRN-778899",
    "XQZ123456789",
    "osteoarthritis",
    "1961-04-02",
]


def _database_bytes(tmp_path) -> bytes:
    if connection.vendor == "sqlite":
        path = tmp_path / "copy.sqlite3"
        with connection.cursor() as cursor:
            cursor.execute("VACUUM INTO %s", [str(path)])
        return path.read_bytes()
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.fail("pg_dump is needed to inspect the PostgreSQL database")
    settings = connection.settings_dict
    result = subprocess.run(
        [
            pg_dump,
            "-h",
            settings["HOST"] or "127.0.0.1",
            "-p",
            str(settings["PORT"] or 5432),
            "-U",
            settings["USER"],
            "--data-only",
            settings["NAME"],
        ],
        capture_output=True,
        check=True,
        timeout=120,
    )
    return result.stdout


@pytest.mark.django_db(transaction=True)
def test_patient_fields_are_never_stored_in_plaintext(referral, tmp_path):
    services.add_note(referral, actor="test", note="Zelda prefers morning calls")
    document = services.attach_document(
        referral,
        actor="test",
        name="Quackenbush fax.pdf",
        content=b"%PDF-1.4 Zelda Quackenbush",
        content_type="application/pdf",
    )
    raw = _database_bytes(tmp_path)
    assert b"Referral" in raw or b"received" in raw  # we are looking at the right database
    for secret in SECRETS:
        assert secret.encode() not in raw, secret
    on_disk = document.file.storage.open(document.file.name, "rb").read()
    assert b"Zelda" not in on_disk and b"%PDF" not in on_disk
    assert "Quackenbush" not in document.file.name


def test_encrypted_columns_cannot_be_searched_by_mistake(referral):
    with pytest.raises(NotImplementedError, match="blind index"):
        list(Referral.objects.filter(patient_last_name__icontains="quack"))


def _raw_column(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT patient_last_name FROM referrals_referral WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_key_rotation_re_encrypts_everything_and_the_app_still_reads_it(site, referring_provider, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(PHI_KEYS=[old]):
        referral = services.receive_referral(
            actor="test", referrer=services.ReferrerInfo(npi=referring_provider.npi), **PATIENT
        )
        document = services.attach_document(
            referral, actor="test", name="fax.pdf", content=b"%PDF-1.4 fax", content_type="application/pdf"
        )
        services.add_note(referral, actor="test", note="called twice")
        before = _raw_column(referral.pk)
    with override_settings(PHI_KEYS=[new, old]):
        call_command("phi", "rotate")
        after = _raw_column(referral.pk)
    assert after != before
    with override_settings(PHI_KEYS=[new]):
        reread = Referral.objects.get(pk=referral.pk)
        assert reread.patient_last_name == PATIENT["patient_last_name"]
        assert reread.events.get(kind="note").note == "called twice"
        from liaison.core.phi import decrypt_bytes

        assert decrypt_bytes(document.file.storage.open(document.file.name, "rb").read()) == b"%PDF-1.4 fax"
        with pytest.raises(PhiKeyError):
            decrypt_text(before)  # the old ciphertext needs the old key, which is gone


def test_a_missing_key_is_a_clear_error_not_garbage(referral):
    with (
        override_settings(PHI_KEYS=[Fernet.generate_key().decode()]),
        pytest.raises(PhiKeyError, match="PHI_KEYS"),
    ):
        Referral.objects.get(pk=referral.pk)


def test_values_written_in_the_older_fernet_format_still_read_and_rotation_rewrites_them(referral):
    key = django_settings.PHI_KEYS[0]
    old_token = Fernet(key.encode()).encrypt(b"Quackenbush").decode()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE referrals_referral SET patient_last_name = %s WHERE id = %s", [old_token, referral.pk]
        )
    assert Referral.objects.get(pk=referral.pk).patient_last_name == "Quackenbush"
    call_command("phi", "rotate")
    rotated = _raw_column(referral.pk)
    assert rotated != old_token and not rotated.startswith("gAAAAA")  # the current format
    assert decrypt_text(rotated) == "Quackenbush"
    assert Referral.objects.get(pk=referral.pk).patient_last_name == "Quackenbush"


def test_tampered_ciphertext_is_refused_not_decrypted_to_garbage(referral):
    token = _raw_column(referral.pk)
    blob = bytearray(base64.urlsafe_b64decode(token))
    blob[-1] ^= 1
    with pytest.raises(PhiKeyError):
        decrypt_text(base64.urlsafe_b64encode(bytes(blob)).decode())
    with pytest.raises(PhiKeyError):
        decrypt_text("not a token at all")


def test_documents_stored_in_the_older_fernet_format_still_open_and_rotation_rewrites_them(referral):
    from liaison.core.phi import decrypt_bytes

    document = services.attach_document(
        referral, actor="test", name="fax.pdf", content=b"%PDF-1.4 new", content_type="application/pdf"
    )
    storage, name = document.file.storage, document.file.name
    old = Fernet(django_settings.PHI_KEYS[0].encode()).encrypt(b"%PDF-1.4 old fax")
    with storage.open(name, "wb") as f:
        f.write(old)
    assert decrypt_bytes(storage.open(name, "rb").read()) == b"%PDF-1.4 old fax"
    call_command("phi", "rotate")
    rotated = storage.open(name, "rb").read()
    assert rotated != old and not rotated.startswith(b"gAAAAA")  # the current format
    assert decrypt_bytes(rotated) == b"%PDF-1.4 old fax"
