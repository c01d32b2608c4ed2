-- Courses candidates have passed (成绩合格), imported by ops from the score records, keyed by
-- admission-ticket number: a passed course is never claimed for exemption.
CREATE TABLE application.passed_courses (
    admission_ticket_number text NOT NULL CHECK (admission_ticket_number ~ '^\d{10,15}$'),
    course_code             text NOT NULL CHECK (course_code ~ '^\d{5}$'),
    passed_on               date,
    import_id               uuid NOT NULL,
    imported_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (admission_ticket_number, course_code)
);

CREATE TABLE application.score_imports (
    import_id   uuid PRIMARY KEY,
    file_name   text NOT NULL,
    sha256      text NOT NULL,
    rows        integer NOT NULL,
    imported_by text NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now()
);
