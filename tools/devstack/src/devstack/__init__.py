"""Local stack of real parts started as processes (no Docker)."""
