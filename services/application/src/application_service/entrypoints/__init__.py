"""entrypoints layer of application (content arrives with the service's own issue)."""
