"""Patient data (PHI) at rest: encrypted model fields, blind indexes, key rotation.

- `EncryptedTextField` / `EncryptedDateField` store a token: AES-256-GCM under a key derived
  (HKDF-SHA256) from the first key of settings.PHI_KEYS, with a random 96-bit nonce, in URL-safe
  base64: version byte 0x91, nonce, ciphertext and tag. Any key of the list decrypts, so keys
  rotate by putting a new key first, running `liaison phi rotate`, then dropping the old one.
- Values written before 2026-12 are Fernet tokens (AES-128-CBC + HMAC-SHA256, version byte
  0x80) under the same keys: they still decrypt, and `liaison phi rotate` rewrites them in the
  current format. The change: a Fernet token costs 16 µs to make, GCM 3 µs, and a referral has
  nine encrypted fields (a 100k-row import spent 13 s encrypting).
- An encrypted column cannot be searched. Where we must find or match by a patient value
  (duplicates, a coordinator searching a name) we store `phi_index(value)`: an HMAC of the
  normalised value under PHI_INDEX_KEY, which equals for equal values and reveals nothing else.
- Files (faxed referrals) are encrypted with the same keys (`encrypt_bytes`: the same layout,
  not base64-encoded).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import os
import re
import unicodedata
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.signals import setting_changed
from django.db import models
from django.dispatch import receiver

_GCM_PREFIX = b"\x91"  # version byte of the current format
_NONCE = 12


class PhiKeyError(Exception):
    """A value cannot be decrypted with any configured key (wrong or missing PHI_KEYS)."""


class _Keys:
    """The configured PHI_KEYS: AES-GCM keys derived from them (the first encrypts), and the
    Fernet keys themselves for tokens written in the old format."""

    def __init__(self, keys: list[str]) -> None:
        self.fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        self.gcm = [AESGCM(_derive(k)) for k in keys]

    def encrypt(self, data: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return _GCM_PREFIX + nonce + self.gcm[0].encrypt(nonce, data, None)

    def decrypt(self, blob: bytes) -> bytes:
        """`blob`: the raw bytes of a GCM token (version byte first)."""
        nonce, sealed = blob[1 : 1 + _NONCE], blob[1 + _NONCE :]
        for key in self.gcm:
            try:
                return key.decrypt(nonce, sealed, None)
            except InvalidTag:
                continue
        raise InvalidToken


def _derive(key: str) -> bytes:
    material = base64.urlsafe_b64decode(key.encode())
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"liaison phi aes-256-gcm v1").derive(
        material
    )


@lru_cache(maxsize=1)
def _keys() -> _Keys:
    keys = [k.strip() for k in settings.PHI_KEYS if k.strip()]
    if not keys:
        raise PhiKeyError("PHI_KEYS is empty")
    return _Keys(keys)


@receiver(setting_changed)
def _reset_keys(setting: str, **kwargs: Any) -> None:
    if setting in ("PHI_KEYS", "PHI_INDEX_KEY"):
        _keys.cache_clear()


def encrypt_text(value: str) -> str:
    return base64.urlsafe_b64encode(_keys().encrypt(value.encode())).decode()


def _open_text(token: str) -> bytes:
    """The plaintext of a text token in either format (InvalidToken if no key opens it)."""
    try:
        blob = base64.urlsafe_b64decode(token.encode())
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken from exc
    if blob[:1] == _GCM_PREFIX:
        return _keys().decrypt(blob)
    return _keys().fernet.decrypt(token.encode())


def decrypt_text(token: str) -> str:
    try:
        return _open_text(token).decode()
    except InvalidToken as exc:
        raise PhiKeyError("patient data cannot be decrypted with the configured PHI_KEYS") from exc


def encrypt_bytes(data: bytes) -> bytes:
    return _keys().encrypt(data)


def _open_bytes(token: bytes) -> bytes:
    if token[:1] == _GCM_PREFIX:
        return _keys().decrypt(token)
    return _keys().fernet.decrypt(token)


def decrypt_bytes(token: bytes) -> bytes:
    try:
        return _open_bytes(token)
    except InvalidToken as exc:
        raise PhiKeyError("a stored document cannot be decrypted with the configured PHI_KEYS") from exc


def rotate_token(token: str | bytes) -> str | bytes:
    """The same plaintext, encrypted with the current (first) key in the current format."""
    try:
        if isinstance(token, str):
            return encrypt_text(_open_text(token).decode())
        return encrypt_bytes(_open_bytes(token))
    except InvalidToken as exc:
        raise PhiKeyError("a value cannot be decrypted with the configured PHI_KEYS") from exc


_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def normalise(value: str) -> str:
    """Case, accents, spaces and punctuation do not matter when matching patient values."""
    text = value or ""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NOT_ALNUM.sub("", text.lower())


def phi_index(*parts: object) -> str:
    """Blind index of one or more values (e.g. last name + date of birth)."""
    message = "|".join(normalise(str(p)) if not isinstance(p, dt.date) else p.isoformat() for p in parts)
    if not message.strip("|"):
        return ""
    mac = _index_mac(settings.PHI_INDEX_KEY).copy()  # keyed once: a copy is cheaper than a new key
    mac.update(message.encode())
    return mac.hexdigest()[:40]


@lru_cache(maxsize=4)
def _index_mac(key: str) -> hmac.HMAC:
    return hmac.new(key.encode(), digestmod=hashlib.sha256)


class EncryptedTextField(models.TextField):
    """A text column holding only ciphertext. Only `isnull` and equality with "" can be queried."""

    description = "Encrypted text (PHI)"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if not value:
            return value
        return decrypt_text(value)

    def get_prep_value(self, value: Any) -> Any:
        return self.ciphertext(super().get_prep_value(value))

    def ciphertext(self, value: Any) -> Any:
        """The stored form of a plain value (str, or a date: its ISO form); None and "" stay."""
        if value is None or value == "":
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
