"""Personal data at rest: AES-256-GCM encryption of ID-card numbers and a keyed lookup hash."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.base import DEV_ONLY_ID_FINGERPRINT_KEY, fingerprint_id_number
from eventkit.settings import refuse_development_values

# DEV ONLY. These keys are public (they are in the repository): they exist so that a laptop and
# the test suite run without configuration. Production sets IDENTITY_PII_KEY and
# IDENTITY_LOOKUP_KEY from the secret store; without EVENTKIT_DEV_MODE=true the settings refuse
# them (`eventkit.settings.refuse_development_values`).
DEV_ONLY_PII_KEY = base64.b64encode(b"DEV-ONLY pii key: never in prod!").decode()
DEV_ONLY_LOOKUP_KEY = base64.b64encode(DEV_ONLY_ID_FINGERPRINT_KEY).decode()

PURPOSE_ROSTER_ID_NUMBER = "identity.roster.id_number"
"""Associated data for the roster's ID-number column: a ciphertext moved elsewhere won't open."""

_NONCE_BYTES = 12
_FORMAT_VERSION = 1


class PiiDecryptionError(Exception):
    """A ciphertext was tampered with, used for another purpose, or sealed under an unknown key."""


class PiiSettings(BaseSettings):
    """Keys for personal data (base64, 32 bytes each), from IDENTITY_* environment variables."""

    model_config = SettingsConfigDict(env_prefix="IDENTITY_", extra="ignore", frozen=True)

    pii_key: SecretStr = SecretStr(DEV_ONLY_PII_KEY)
    pii_key_id: str = Field(default="dev", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    pii_retired_keys: SecretStr = Field(
        default=SecretStr(""), description="older keys still readable: 'id:base64,id:base64'"
    )
    lookup_key: SecretStr = SecretStr(DEV_ONLY_LOOKUP_KEY)

    @model_validator(mode="after")
    def _no_development_keys(self) -> PiiSettings:
        # The PII key also seals the signing keys: a public one gives away every token.
        refuse_development_values(
            self, {"pii_key": DEV_ONLY_PII_KEY, "lookup_key": DEV_ONLY_LOOKUP_KEY}
        )
        return self

    @property
    def uses_dev_keys(self) -> bool:
        """True when either key is the public development key."""
        return self.pii_key.get_secret_value() == DEV_ONLY_PII_KEY or (
            self.lookup_key.get_secret_value() == DEV_ONLY_LOOKUP_KEY
        )


def decode_key(text: str, name: str) -> bytes:
    """A 32-byte key from base64 text."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{name} is not valid base64") from exc
    if len(key) != 32:
        raise ValueError(f"{name} must decode to 32 bytes, got {len(key)}")
    return key


class PiiCipher:
    """Seals ID-card numbers with AES-256-GCM under the current key; opens under any known key.

    Ciphertext layout: version byte, key-id length byte, key id (ASCII), 96-bit random nonce,
    GCM ciphertext with its tag. The key id lets keys rotate without re-encrypting at once.
    """

    def __init__(self, keys: Mapping[str, bytes], current_key_id: str, lookup_key: bytes) -> None:
        if current_key_id not in keys:
            raise ValueError("the current key id has no key")
        for key_id, key in keys.items():
            if len(key) != 32 or not key_id.isascii() or not 0 < len(key_id) < 256:
                raise ValueError("keys must be 32 bytes under short ASCII ids")
        if len(lookup_key) != 32:
            raise ValueError("the lookup key must be 32 bytes")
        if lookup_key in keys.values():
            raise ValueError("the lookup key must differ from the encryption keys")
        self._aead = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._current = current_key_id
        self._lookup_key = lookup_key

    @classmethod
    def from_settings(cls, settings: PiiSettings) -> PiiCipher:
        """A cipher from the IDENTITY_* keys."""
        keys = {settings.pii_key_id: decode_key(settings.pii_key.get_secret_value(), "pii_key")}
        for entry in settings.pii_retired_keys.get_secret_value().split(","):
            if entry.strip():
                key_id, _, text = entry.strip().partition(":")
                keys.setdefault(key_id, decode_key(text, f"retired key {key_id}"))
        return cls(
            keys,
            settings.pii_key_id,
            decode_key(settings.lookup_key.get_secret_value(), "lookup_key"),
        )

    @property
    def current_key_id(self) -> str:
        """The id of the key new ciphertexts are sealed under."""
        return self._current

    def encrypt(self, plaintext: str, purpose: str) -> bytes:
        """Seal text for one column purpose (bound as associated data), under a fresh nonce."""
        nonce = os.urandom(_NONCE_BYTES)
        key_id = self._current.encode("ascii")
        sealed = self._aead[self._current].encrypt(nonce, plaintext.encode(), purpose.encode())
        return bytes((_FORMAT_VERSION, len(key_id))) + key_id + nonce + sealed

    def decrypt(self, blob: bytes, purpose: str) -> str:
        """Open a ciphertext sealed for `purpose`; raises PiiDecryptionError on any mismatch."""
        if len(blob) < 2 or blob[0] != _FORMAT_VERSION:
            raise PiiDecryptionError("unknown ciphertext format")
        end = 2 + blob[1]
        key_id = blob[2:end].decode("ascii", errors="replace")
        aead = self._aead.get(key_id)
        if aead is None:
            raise PiiDecryptionError(f"no key with id {key_id!r}")
        nonce, sealed = blob[end : end + _NONCE_BYTES], blob[end + _NONCE_BYTES :]
        if len(nonce) != _NONCE_BYTES:
            raise PiiDecryptionError("ciphertext truncated")
        try:
            return aead.decrypt(nonce, sealed, purpose.encode()).decode()
        except InvalidTag as exc:
            raise PiiDecryptionError("ciphertext does not authenticate") from exc

    def key_id_of(self, blob: bytes) -> str:
        """The id of the key a ciphertext was sealed under (to find rows to re-encrypt)."""
        return blob[2 : 2 + blob[1]].decode("ascii", errors="replace")

    def lookup_hash(self, id_number: str) -> str:
        """HMAC-SHA256 (hex) of the normalised ID-card number: equality lookups, unique index."""
        return fingerprint_id_number(id_number, self._lookup_key)
