"""Personal data at rest: AES-256-GCM round trip, tampering, nonces, key rotation, lookup hash."""

from __future__ import annotations

import base64
import os

import pytest

from identity_service.adapters.pii import (
    DEV_ONLY_LOOKUP_KEY,
    PURPOSE_ROSTER_ID_NUMBER,
    PiiCipher,
    PiiDecryptionError,
    PiiSettings,
)

pytestmark = pytest.mark.unit

NUMBER = "11010519491231002X"


def cipher(key_id: str = "k1", key: bytes = b"a" * 32, lookup: bytes = b"l" * 32) -> PiiCipher:
    return PiiCipher({key_id: key}, key_id, lookup)


def test_round_trip() -> None:
    c = cipher()
    blob = c.encrypt(NUMBER, PURPOSE_ROSTER_ID_NUMBER)
    assert NUMBER.encode() not in blob
    assert c.decrypt(blob, PURPOSE_ROSTER_ID_NUMBER) == NUMBER
    assert c.key_id_of(blob) == "k1"


def test_each_encryption_uses_a_fresh_nonce() -> None:
    c = cipher()
    blobs = {c.encrypt(NUMBER, PURPOSE_ROSTER_ID_NUMBER) for _ in range(50)}
    assert len(blobs) == 50
    nonces = {b[4:16] for b in blobs}  # version, id length, "k1", then the nonce
    assert len(nonces) == 50


@pytest.mark.parametrize("position", [0, 1, 2, 5, 20, -1])
def test_tampering_is_detected(position: int) -> None:
    c = cipher()
    blob = bytearray(c.encrypt(NUMBER, PURPOSE_ROSTER_ID_NUMBER))
    blob[position] ^= 0x01
    with pytest.raises(PiiDecryptionError):
        c.decrypt(bytes(blob), PURPOSE_ROSTER_ID_NUMBER)


def test_truncated_and_empty_ciphertexts_fail() -> None:
    c = cipher()
    blob = c.encrypt(NUMBER, PURPOSE_ROSTER_ID_NUMBER)
    for broken in (b"", blob[:1], blob[:10], blob[:-1]):
        with pytest.raises(PiiDecryptionError):
            c.decrypt(broken, PURPOSE_ROSTER_ID_NUMBER)


def test_another_purpose_does_not_open() -> None:
    c = cipher()
    blob = c.encrypt(NUMBER, PURPOSE_ROSTER_ID_NUMBER)
    with pytest.raises(PiiDecryptionError):
        c.decrypt(blob, "identity.candidate.id_number")


def test_another_key_does_not_open() -> None:
    blob = cipher(key=b"a" * 32).encrypt(NUMBER, PURPOSE_ROSTER_ID_NUMBER)
    with pytest.raises(PiiDecryptionError):
        cipher(key=b"b" * 32).decrypt(blob, PURPOSE_ROSTER_ID_NUMBER)
    with pytest.raises(PiiDecryptionError):
        cipher(key_id="k2").decrypt(blob, PURPOSE_ROSTER_ID_NUMBER)


def test_rotation_reads_old_ciphertexts_and_writes_under_the_new_key() -> None:
    old = cipher("k1", b"a" * 32)
    blob = old.encrypt(NUMBER, PURPOSE_ROSTER_ID_NUMBER)
    rotated = PiiCipher({"k1": b"a" * 32, "k2": b"b" * 32}, "k2", b"l" * 32)
    assert rotated.decrypt(blob, PURPOSE_ROSTER_ID_NUMBER) == NUMBER
    assert rotated.key_id_of(rotated.encrypt(NUMBER, PURPOSE_ROSTER_ID_NUMBER)) == "k2"


def test_lookup_hash_is_stable_normalised_and_keyed() -> None:
    c = cipher()
    digest = c.lookup_hash(NUMBER)
    assert digest == c.lookup_hash(NUMBER) == c.lookup_hash(NUMBER.lower())
    assert len(digest) == 64 and NUMBER not in digest
    assert digest == cipher(key=b"z" * 32).lookup_hash(NUMBER)  # independent of the AES key
    assert digest != cipher(lookup=b"m" * 32).lookup_hash(NUMBER)
    assert digest != c.lookup_hash("110105194912310011")


@pytest.mark.parametrize(
    ("keys", "current", "lookup"),
    [
        ({"k1": b"a" * 16}, "k1", b"l" * 32),
        ({"k1": b"a" * 32}, "k2", b"l" * 32),
        ({"k1": b"a" * 32}, "k1", b"l" * 31),
        ({"k1": b"a" * 32}, "k1", b"a" * 32),
    ],
)
def test_bad_keys_are_refused(keys: dict[str, bytes], current: str, lookup: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        PiiCipher(keys, current, lookup)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    new, old, lookup = os.urandom(32), os.urandom(32), os.urandom(32)
    monkeypatch.setenv("IDENTITY_PII_KEY", base64.b64encode(new).decode())
    monkeypatch.setenv("IDENTITY_PII_KEY_ID", "2026b")
    monkeypatch.setenv("IDENTITY_PII_RETIRED_KEYS", "2026a:" + base64.b64encode(old).decode())
    monkeypatch.setenv("IDENTITY_LOOKUP_KEY", base64.b64encode(lookup).decode())
    settings = PiiSettings()
    assert not settings.uses_dev_keys
    c = PiiCipher.from_settings(settings)
    assert c.current_key_id == "2026b"
    old_blob = PiiCipher({"2026a": old}, "2026a", lookup).encrypt(NUMBER, "p")
    assert c.decrypt(old_blob, "p") == NUMBER


def test_dev_keys_are_the_default_and_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IDENTITY_PII_KEY", "IDENTITY_LOOKUP_KEY", "IDENTITY_PII_RETIRED_KEYS"):
        monkeypatch.delenv(name, raising=False)
    settings = PiiSettings()
    assert settings.uses_dev_keys
    assert settings.lookup_key.get_secret_value() == DEV_ONLY_LOOKUP_KEY
    PiiCipher.from_settings(settings)


def test_a_key_of_the_wrong_size_in_settings_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDENTITY_PII_KEY", base64.b64encode(b"short").decode())
    with pytest.raises(ValueError, match="32 bytes"):
        PiiCipher.from_settings(PiiSettings())
