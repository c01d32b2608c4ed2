-- Citations recorded synchronously: the application service asks media to record that a draft's
-- certificate cites a photo before it records the certificate itself (ADR 0015). A row is taken
-- under the photo's row lock, so it and an owner's delete (or the sweeper) happen in one order:
-- a photo that is cited is never deleted, and a deleted photo cannot be cited.
-- A citation counts until the usage projection has seen its certificate removed or its
-- application withdrawn (media_usage.released_certificates / withdrawn_applications).
CREATE TABLE media.citations (
    photo_id       uuid NOT NULL REFERENCES media.photos (photo_id),
    application_id uuid NOT NULL,
    certificate_id uuid NOT NULL,
    cited_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (photo_id, application_id, certificate_id)
);
CREATE INDEX citations_certificate ON media.citations (application_id, certificate_id);
