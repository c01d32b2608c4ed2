"""Ops tooling across the services: audit a case from the events themselves."""
