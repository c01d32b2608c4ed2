"""The base of every identity domain error: a stable code, a Chinese message, an English detail."""

from __future__ import annotations

from eventkit.errors import DomainError as _Base


class DomainError(_Base):
    """An identity error the user can act on (see eventkit.errors.DomainError)."""

    code: str = "identity.error"
