-- Short-lived security state of logins: one-time captchas and failure throttling. These are
-- operational counters with a TTL, not domain facts, so they live in plain tables (ADR 0006).

CREATE TABLE identity.captchas (
    id          uuid PRIMARY KEY,
    answer_hash bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX captchas_expires_idx ON identity.captchas (expires_at);

CREATE TABLE identity.login_throttle (
    key            text PRIMARY KEY,
    failures       integer NOT NULL,
    window_started timestamptz NOT NULL,
    locked_until   timestamptz
);
