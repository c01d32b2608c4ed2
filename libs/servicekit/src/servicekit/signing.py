"""Ed25519 signing keys and token issuance: for identity, and for other services' tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.utils import base64url_encode

DEFAULT_AUDIENCE = "zikao"
IDENTITY_ISSUER = "zikao-identity"  # the `iss` of identity's tokens, checked by every service


@dataclass(frozen=True)
class Ed25519KeyPair:
    """One signing key with its key id (`kid`)."""

    kid: str
    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls, kid: str) -> Ed25519KeyPair:
        """A fresh random key pair."""
        return cls(kid, Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, kid: str, pem: bytes, password: bytes | None = None) -> Ed25519KeyPair:
        """Load a PKCS#8 PEM private key (optionally encrypted with `password`)."""
        key = serialization.load_pem_private_key(pem, password=password)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the PEM does not hold an Ed25519 private key")
        return cls(kid, key)

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The verifying half."""
        return self.private_key.public_key()

    def private_pem(self, password: bytes | None = None) -> bytes:
        """PKCS#8 PEM of the private key, encrypted when `password` is given."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def public_jwk(self) -> dict[str, str]:
        """The public key as an OKP JWK (RFC 8037) for the JWKS endpoint."""
        raw = self.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": base64url_encode(raw).decode("ascii"),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        }


def jwks(*pairs: Ed25519KeyPair) -> dict[str, list[dict[str, str]]]:
    """A JWKS document `{"keys": [...]}` of the given key pairs' public keys."""
    return {"keys": [p.public_jwk() for p in pairs]}


def issue_token(
    keypair: Ed25519KeyPair,
    *,
    subject: str,
    kind: str,
    roles: Iterable[str],
    issuer: str,
    ttl: timedelta,
    audience: str = DEFAULT_AUDIENCE,
    confirmation_points: Iterable[str] = (),
    now: datetime | None = None,
    token_id: str | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """Sign an EdDSA JWT with the platform's claims (`cps` only on staff tokens)."""
    issued = (now or datetime.now(UTC)).replace(microsecond=0)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "typ": kind,
        "roles": sorted(set(roles)),
        "iat": int(issued.timestamp()),
        "nbf": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
        "jti": token_id or uuid.uuid4().hex,
    }
    if kind == "staff":
        claims["cps"] = sorted(set(confirmation_points))
    claims.update(extra_claims or {})
    return jwt.encode(claims, keypair.private_key, algorithm="EdDSA", headers={"kid": keypair.kid})
