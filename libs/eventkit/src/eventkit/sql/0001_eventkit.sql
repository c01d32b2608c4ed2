-- eventkit's own tables, in their own schema so they never collide with a service's projections.
CREATE SCHEMA IF NOT EXISTS eventkit;

-- The event store. The feed is ordered by (tx_id, seq): seq alone is not commit order, because a
-- transaction that took a lower seq may commit after one that took a higher seq. Readers only read
-- rows whose tx_id is below the oldest transaction still running (pg_snapshot_xmin), so a late
-- commit can never land behind a reader's position.
CREATE TABLE eventkit.events (
    seq            bigint GENERATED ALWAYS AS IDENTITY,
    tx_id          xid8 NOT NULL DEFAULT pg_current_xact_id(),
    event_id       uuid NOT NULL,
    stream_type    text NOT NULL,
    stream_id      text NOT NULL,
    stream_version integer NOT NULL CHECK (stream_version >= 1),
    event_type     text NOT NULL,
    schema_version integer NOT NULL CHECK (schema_version >= 1),
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT statement_timestamp(),
    correlation_id uuid NOT NULL,
    causation_id   uuid,
    actor_kind     text NOT NULL,
    actor_id       text NOT NULL,
    payload        jsonb NOT NULL,
    CONSTRAINT events_pkey PRIMARY KEY (event_id),
    CONSTRAINT events_stream_version_key UNIQUE (stream_type, stream_id, stream_version)
);
CREATE INDEX events_feed_idx ON eventkit.events (tx_id, seq);
CREATE INDEX events_correlation_idx ON eventkit.events (correlation_id);

-- Snapshots of long streams: the folded state at a version, written by the repository.
CREATE TABLE eventkit.snapshots (
    stream_type    text NOT NULL,
    stream_id      text NOT NULL,
    stream_version integer NOT NULL,
    state_version  integer NOT NULL,
    state          jsonb NOT NULL,
    taken_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_type, stream_id)
);

-- Where each outbox relay has got to in the feed; written only after the broker acknowledged.
CREATE TABLE eventkit.relay_positions (
    relay_name  text PRIMARY KEY,
    tx_id       xid8 NOT NULL,
    seq         bigint NOT NULL,
    published   bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Poison events: kept with their error for ops, never silently dropped.
CREATE TABLE eventkit.dead_letters (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer        text NOT NULL,
    topic           text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset    bigint NOT NULL,
    event_id        uuid,
    event_type      text,
    raw_value       bytea,
    error_type      text NOT NULL,
    error           text NOT NULL,
    failed_at       timestamptz NOT NULL DEFAULT now(),
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'retried', 'discarded')),
    resolved_at     timestamptz,
    resolved_by     text,
    UNIQUE (consumer, topic, kafka_partition, kafka_offset)
);
CREATE INDEX dead_letters_open_idx ON eventkit.dead_letters (consumer) WHERE status = 'open';
