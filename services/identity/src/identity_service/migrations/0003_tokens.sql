-- Token signing keys (private halves encrypted at rest) and rotating refresh tokens (hashed).

CREATE TABLE identity.signing_keys (
    kid                   text PRIMARY KEY,
    private_key_encrypted bytea NOT NULL,
    public_jwk            jsonb NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    retired_at            timestamptz
);

CREATE TABLE identity.refresh_tokens (
    id           uuid PRIMARY KEY,
    family_id    uuid NOT NULL,
    account_id   text NOT NULL,
    account_kind text NOT NULL CHECK (account_kind IN ('candidate', 'staff')),
    token_hash   bytea NOT NULL UNIQUE,
    issued_at    timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX refresh_tokens_family_idx ON identity.refresh_tokens (family_id);
CREATE INDEX refresh_tokens_account_idx ON identity.refresh_tokens (account_id);
