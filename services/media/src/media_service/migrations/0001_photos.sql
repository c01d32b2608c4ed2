-- Photos as the media service keeps them, beside its event store (written in the same
-- transaction as the photo's events), and the uploads whose objects are written but whose event
-- is not yet: the orphan sweeper's work list.
CREATE SCHEMA IF NOT EXISTS media;

CREATE TABLE media.photos (
    photo_id        uuid PRIMARY KEY,
    owner_id        uuid NOT NULL,
    format          text NOT NULL CHECK (format IN ('jpeg', 'png')),
    width           integer NOT NULL CHECK (width > 0),
    height          integer NOT NULL CHECK (height > 0),
    size_bytes      integer NOT NULL CHECK (size_bytes > 0),
    sha256          text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    display_width   integer NOT NULL,
    display_height  integer NOT NULL,
    display_bytes   integer NOT NULL,
    thumbnail_bytes integer NOT NULL,
    uploaded_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    deletion_reason text,
    purged_at       timestamptz,  -- its objects are removed from the bucket
    CHECK ((deleted_at IS NULL) = (deletion_reason IS NULL)),
    CHECK (purged_at IS NULL OR deleted_at IS NOT NULL)
);

-- The candidate's photos, newest first.
CREATE INDEX photos_owner ON media.photos (owner_id, uploaded_at DESC) WHERE deleted_at IS NULL;
-- Unused-photo sweep: live photos by age.
CREATE INDEX photos_live_age ON media.photos (uploaded_at) WHERE deleted_at IS NULL;
-- Purge: deleted photos whose objects are still in the bucket.
CREATE INDEX photos_to_purge ON media.photos (deleted_at)
    WHERE deleted_at IS NOT NULL AND purged_at IS NULL;

-- An upload between "objects written" and "event appended". The row is committed before the
-- first object is written and removed in the transaction that appends PhotoUploaded; a row that
-- outlives that (crash, database or storage failure) names the objects the sweeper removes.
CREATE TABLE media.pending_uploads (
    photo_id   uuid PRIMARY KEY,
    owner_id   uuid NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pending_uploads_age ON media.pending_uploads (started_at);
