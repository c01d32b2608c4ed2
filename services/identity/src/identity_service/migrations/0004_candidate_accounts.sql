-- Candidate accounts: the credentials and contact data behind the identity.candidate streams.
-- One account per roster entry, enforced by unique keys, so concurrent registrations of the
-- same person cannot both succeed.
CREATE TABLE identity.candidate_accounts (
    candidate_id     uuid PRIMARY KEY,
    ticket_number    text NOT NULL UNIQUE REFERENCES identity.roster (ticket_number),
    id_lookup_hash   text NOT NULL UNIQUE,
    password_hash    text NOT NULL,
    mobile_encrypted bytea NOT NULL,
    mobile_masked    text NOT NULL CHECK (mobile_masked ~ '^1[3-9][0-9]\*{4}[0-9]{4}$'),
    email            text,
    registered_at    timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now()
);
