"""Event contracts shared by the services: frozen payload models and their schemas."""
