-- Courses granted (免考) by decided applications, written in the transaction that records the
-- decision: every command reads a candidate's exemptions from here instead of scanning the
-- decisions in the event store.
CREATE TABLE application.exempted_courses (
    candidate_id   uuid NOT NULL,
    course_code    text NOT NULL,
    application_id uuid NOT NULL,
    PRIMARY KEY (candidate_id, course_code, application_id)
);

-- Decisions recorded before this table existed.
INSERT INTO application.exempted_courses (candidate_id, course_code, application_id)
SELECT DISTINCT (e.payload->>'candidate_id')::uuid, d->>'course_code', e.stream_id::uuid
FROM eventkit.events e, jsonb_array_elements(e.payload->'decisions') AS d
WHERE e.stream_type = 'application.exemption' AND e.event_type = 'ApplicationDecided'
  AND d->>'outcome' = 'granted'
ON CONFLICT DO NOTHING;
