"""adapters layer of review (content arrives with the service's own issue)."""
