"""The base of every identity domain error: a stable code, a Chinese message, an English detail."""

from __future__ import annotations


class DomainError(Exception):
    """An error the user can act on: stable `code`, Chinese `message`, English `detail_en`."""

    code: str = "identity.error"
    status: int = 422  # the HTTP status an entrypoint answers with; input that breaks a rule

    def __init__(self, message: str, detail_en: str = "", *, code: str | None = None) -> None:
        super().__init__(detail_en or message)
        if code is not None:
            self.code = code
        self.message = message
        self.detail_en = detail_en or message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, detail_en={self.detail_en!r})"
