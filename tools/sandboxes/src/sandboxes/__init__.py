"""Local stand-ins for the external providers (see docs/providers.md)."""
