-- Parked streams (ADR 0018): once a consumer dead-letters an event of a stream, it applies no
-- later event of that stream until the dead letter is retried (or discarded) by ops. The later
-- events are kept, in order, as dead letters with status 'held', each pointing at the letter
-- it waits for (`held_by`); they are not errors.
ALTER TABLE eventkit.dead_letters
    ADD COLUMN stream_type    text,
    ADD COLUMN stream_id      text,
    ADD COLUMN stream_version integer,
    ADD COLUMN held_by        bigint REFERENCES eventkit.dead_letters (id);
ALTER TABLE eventkit.dead_letters DROP CONSTRAINT dead_letters_status_check;
ALTER TABLE eventkit.dead_letters ADD CONSTRAINT dead_letters_status_check
    CHECK (status IN ('open', 'held', 'retried', 'discarded'));
ALTER TABLE eventkit.dead_letters ADD CONSTRAINT dead_letters_held_check
    CHECK ((status = 'held') = (held_by IS NOT NULL) OR status IN ('retried', 'discarded'));
CREATE INDEX dead_letters_held_idx ON eventkit.dead_letters (held_by, id) WHERE status = 'held';

CREATE TABLE eventkit.parked_streams (
    consumer             text NOT NULL,
    stream_type          text NOT NULL,
    stream_id            text NOT NULL,
    parked_at            timestamptz NOT NULL DEFAULT now(),
    first_dead_letter_id bigint NOT NULL REFERENCES eventkit.dead_letters (id),
    PRIMARY KEY (consumer, stream_type, stream_id)
);
CREATE INDEX parked_streams_head_idx ON eventkit.parked_streams (first_dead_letter_id);
