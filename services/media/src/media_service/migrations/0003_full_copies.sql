-- The sanitised full-resolution copy (`full`: re-encoded JPEG, upright, no metadata) that staff
-- are given instead of the untouched original. NULL for photos stored before it existed: their
-- staff links fall back to the display copy.
ALTER TABLE media.photos ADD COLUMN full_bytes integer;
