-- A rotated refresh token remembers its successor for the grace interval, sealed with a key
-- derived from the rotated token itself (only its presenter can open it; the table alone cannot):
-- two tabs of one session renewing at the same moment get the same successor instead of one of
-- them counting as reuse.

ALTER TABLE identity.refresh_tokens ADD COLUMN successor_sealed bytea;
