-- SMS verification codes (短信验证码) sent before registration: one row per code sent, short-lived
-- security state like the captchas (ADR 0006, 0017). Neither the mobile number nor the code is
-- stored: both only as keyed hashes (the code's keyed with its row id).

CREATE TABLE identity.sms_codes (
    id          uuid PRIMARY KEY,
    purpose     text NOT NULL,
    mobile_hash text NOT NULL,
    code_hash   bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    used_at     timestamptz
);
CREATE INDEX sms_codes_mobile_idx ON identity.sms_codes (mobile_hash, purpose, created_at DESC);
CREATE INDEX sms_codes_expires_idx ON identity.sms_codes (expires_at);
