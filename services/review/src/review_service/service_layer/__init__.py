"""service_layer layer of review (content arrives with the service's own issue)."""
