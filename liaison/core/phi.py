"""Patient data (PHI) at rest: encrypted model fields, blind indexes, key rotation.

- `EncryptedTextField` / `EncryptedDateField` store a Fernet token (AES-128-CBC + HMAC-SHA256)
  made with the first key of settings.PHI_KEYS; any key of the list decrypts, so keys rotate by
  putting a new key first, running `liaison phi rotate`, then dropping the old one.
- An encrypted column cannot be searched. Where we must find or match by a patient value
  (duplicates, a coordinator searching a name) we store `phi_index(value)`: an HMAC of the
  normalised value under PHI_INDEX_KEY, which equals for equal values and reveals nothing else.
- Files (faxed referrals) are encrypted with the same keys (`encrypt_bytes`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import unicodedata
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.signals import setting_changed
from django.db import models
from django.dispatch import receiver


class PhiKeyError(Exception):
    """A value cannot be decrypted with any configured key (wrong or missing PHI_KEYS)."""


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    keys = [k.strip() for k in settings.PHI_KEYS if k.strip()]
    if not keys:
        raise PhiKeyError("PHI_KEYS is empty")
    return MultiFernet([Fernet(k.encode()) for k in keys])


@receiver(setting_changed)
def _reset_keys(setting: str, **kwargs: Any) -> None:
    if setting in ("PHI_KEYS", "PHI_INDEX_KEY"):
        _fernet.cache_clear()


def encrypt_text(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt_text(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise PhiKeyError("patient data cannot be decrypted with the configured PHI_KEYS") from exc


def encrypt_bytes(data: bytes) -> bytes:
    return _fernet().encrypt(data)


def decrypt_bytes(token: bytes) -> bytes:
    try:
        return _fernet().decrypt(token)
    except InvalidToken as exc:
        raise PhiKeyError("a stored document cannot be decrypted with the configured PHI_KEYS") from exc


def rotate_token(token: str | bytes) -> str | bytes:
    """The same plaintext, encrypted with the current (first) key."""
    if isinstance(token, str):
        return _fernet().rotate(token.encode()).decode()
    return _fernet().rotate(token)


def normalise(value: str) -> str:
    """Case, accents, spaces and punctuation do not matter when matching patient values."""
    text = unicodedata.normalize("NFKD", value or "").encode("ascii", "ignore").decode().lower()
    return "".join(ch for ch in text if ch.isalnum())


def phi_index(*parts: object) -> str:
    """Blind index of one or more values (e.g. last name + date of birth)."""
    message = "|".join(normalise(str(p)) if not isinstance(p, dt.date) else p.isoformat() for p in parts)
    if not message.strip("|"):
        return ""
    return hmac.new(settings.PHI_INDEX_KEY.encode(), message.encode(), hashlib.sha256).hexdigest()[:40]


class EncryptedTextField(models.TextField):
    """A text column holding only ciphertext. Only `isnull` and equality with "" can be queried."""

    description = "Encrypted text (PHI)"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if not value:
            return value
        return decrypt_text(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return encrypt_text(str(value))

    def get_lookup(self, lookup_name: str) -> Any:
        if lookup_name not in ("isnull", "exact"):
            raise NotImplementedError(f"{self.name} is encrypted: use its blind index to search")
        return super().get_lookup(lookup_name)


class EncryptedDateField(EncryptedTextField):
    description = "Encrypted date (PHI)"

    def to_python(self, value: Any) -> dt.date | None:
        if value in (None, "") or isinstance(value, dt.date):
            return value or None
        return dt.date.fromisoformat(str(value))

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> dt.date | None:
        text = super().from_db_value(value, expression, connection)
        return dt.date.fromisoformat(text) if text else None

    def get_prep_value(self, value: Any) -> Any:
        if isinstance(value, dt.date):
            value = value.isoformat()
        return super().get_prep_value(value)

    def value_to_string(self, obj: models.Model) -> str:
        value = self.value_from_object(obj)
        return value.isoformat() if value else ""

    def formfield(self, **kwargs: Any) -> Any:
        from django import forms

        return super(models.TextField, self).formfield(**{"form_class": forms.DateField, **kwargs})


def encrypted_fields(model: type[models.Model]) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
