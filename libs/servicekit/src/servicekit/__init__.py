"""HTTP platform shared by the services (no domain knowledge)."""
