"""entrypoints layer of media (content arrives with the service's own issue)."""
