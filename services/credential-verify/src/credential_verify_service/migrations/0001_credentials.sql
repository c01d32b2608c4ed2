-- credential-verify's state beside its event store (written in the same transactions as the
-- events): CHSI authorisations, the callbacks received, verified degrees and certificate checks.
-- No full ID number is stored here: records are matched by the keyed fingerprint.
CREATE SCHEMA IF NOT EXISTS credential;

CREATE TABLE credential.authorizations (
    authorization_id uuid PRIMARY KEY,
    candidate_id     uuid NOT NULL,
    method           text NOT NULL CHECK (method IN ('qr_code', 'verification_code')),
    ticket           text UNIQUE,  -- CHSI's ticket (QR only)
    qr_content       text,
    expires_at       timestamptz NOT NULL,
    status           text NOT NULL
        CHECK (status IN ('requested', 'approved', 'denied', 'expired')),
    decided_at       timestamptz,
    accepted_records integer NOT NULL DEFAULT 0,
    refused_records  integer NOT NULL DEFAULT 0,
    refused_fields   text[] NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (method <> 'qr_code' OR ticket IS NOT NULL)
);
CREATE INDEX authorizations_candidate ON credential.authorizations (candidate_id, created_at DESC);
CREATE INDEX authorizations_open ON credential.authorizations (expires_at)
    WHERE status = 'requested';

-- Every signed callback accepted once: a replay of the same signature is a duplicate.
CREATE TABLE credential.callback_receipts (
    ticket      text NOT NULL,
    signature   text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ticket, signature)
);

CREATE TABLE credential.degrees (
    degree_ref       uuid PRIMARY KEY,
    candidate_id     uuid NOT NULL,
    record_id        text NOT NULL,
    authorization_id uuid NOT NULL,
    holder_name      text NOT NULL,
    id_number_masked text NOT NULL,
    degree           jsonb NOT NULL,  -- the contracts' VerifiedDegree
    verified_at      timestamptz NOT NULL,
    valid_until      date,
    UNIQUE (candidate_id, record_id)
);

CREATE TABLE credential.certificate_checks (
    check_id           uuid PRIMARY KEY,
    candidate_id       uuid NOT NULL,
    exam               text NOT NULL,
    certificate_number text NOT NULL,
    outcome            text NOT NULL CHECK (outcome IN ('verified', 'failed')),
    reason_code        text,
    details            jsonb NOT NULL,
    checked_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX certificate_checks_candidate
    ON credential.certificate_checks (candidate_id, checked_at DESC);
