"""adapters layer of identity (content arrives with the service's own issue)."""
