-- Application windows (opened and closed by ops), the applications' command-side table (written
-- in the same transaction as their events: it carries the "one open application per candidate
-- per window" constraint and the lists the portal shows), and case-number sequences.

CREATE TABLE application.windows (
    window_id                uuid PRIMARY KEY,
    name                     text NOT NULL,
    opens_at                 timestamptz NOT NULL,
    applications_close_at    timestamptz NOT NULL,
    point_review_close_at    timestamptz NOT NULL,
    province_review_close_at timestamptz NOT NULL,
    results_published_at     timestamptz NOT NULL,
    closed_by_ops            boolean NOT NULL DEFAULT false,
    created_by               text NOT NULL,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_by               text,
    updated_at               timestamptz,
    CHECK (opens_at < applications_close_at
           AND applications_close_at < point_review_close_at
           AND point_review_close_at < province_review_close_at
           AND province_review_close_at < results_published_at)
);

CREATE TABLE application.applications (
    application_id        uuid PRIMARY KEY,
    candidate_id          uuid NOT NULL,
    window_id             uuid NOT NULL REFERENCES application.windows (window_id),
    status                text NOT NULL
        CHECK (status IN ('draft', 'submitted', 'returned', 'decided', 'withdrawn')),
    confirmation_point_id text NOT NULL,
    catalogue_version     text NOT NULL,
    case_number           text UNIQUE,
    submission_number     integer NOT NULL DEFAULT 0,
    version               integer NOT NULL,  -- the stream version these columns reflect
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
-- One open application per candidate per window, whatever races: the database decides.
CREATE UNIQUE INDEX applications_one_open
    ON application.applications (candidate_id, window_id)
    WHERE status IN ('draft', 'submitted', 'returned');
CREATE INDEX applications_candidate ON application.applications (candidate_id, created_at DESC);

-- 办件编号: MK + year + a six-digit sequence per year.
CREATE TABLE application.case_sequences (
    year integer PRIMARY KEY,
    last integer NOT NULL
);
