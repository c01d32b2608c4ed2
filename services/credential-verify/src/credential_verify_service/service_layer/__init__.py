"""service_layer layer of credential-verify (content arrives with the service's own issue)."""
