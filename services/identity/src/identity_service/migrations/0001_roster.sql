-- 在籍考生名册: the enrolment roster ops import, and a record of every import.
-- ID-card numbers are never stored in clear: AES-256-GCM ciphertext, a keyed HMAC for lookups
-- and uniqueness, and the masked display form.
CREATE SCHEMA IF NOT EXISTS identity;

CREATE TABLE identity.roster_imports (
    import_id      uuid PRIMARY KEY,
    file_name      text NOT NULL,
    file_sha256    text NOT NULL CHECK (file_sha256 ~ '^[0-9a-f]{64}$'),
    rows_read      integer NOT NULL DEFAULT 0 CHECK (rows_read >= 0),
    rows_inserted  integer NOT NULL DEFAULT 0 CHECK (rows_inserted >= 0),
    rows_updated   integer NOT NULL DEFAULT 0 CHECK (rows_updated >= 0),
    rows_unchanged integer NOT NULL DEFAULT 0 CHECK (rows_unchanged >= 0),
    rows_rejected  integer NOT NULL DEFAULT 0 CHECK (rows_rejected >= 0),
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz,
    actor          text NOT NULL
);

CREATE TABLE identity.roster (
    ticket_number         text PRIMARY KEY CHECK (ticket_number ~ '^[0-9]{10,15}$'),
    id_lookup_hash        text NOT NULL UNIQUE CHECK (id_lookup_hash ~ '^[0-9a-f]{64}$'),
    id_number_encrypted   bytea NOT NULL,
    id_number_masked      text NOT NULL CHECK (id_number_masked ~ '^[0-9]{4}\*{10}[0-9]{3}[0-9X]$'),
    name                  text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 30),
    gender                text NOT NULL CHECK (gender IN ('male', 'female')),
    exam_district         text NOT NULL CHECK (exam_district ~ '^[0-9]{6}$'),
    registration_district text NOT NULL CHECK (registration_district ~ '^[0-9]{6}$'),
    major_code            text NOT NULL CHECK (major_code ~ '^[0-9]{6}[A-Z]?$'),
    passed_courses        text[] NOT NULL DEFAULT '{}',
    content_hash          text NOT NULL,
    import_id             uuid NOT NULL REFERENCES identity.roster_imports (import_id),
    imported_at           timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
