"""Request and response models shared by identity's routers (api.py, staff_api.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from identity_service.service_layer.tokens import TokenPair
from servicekit.models import StrictRequest


class Strict(StrictRequest):
    """Request bodies: unknown fields and control characters refused (servicekit)."""

    model_config = ConfigDict(extra="forbid", str_max_length=200)


class TokenRead(BaseModel):
    """Tokens handed out by login and refresh."""

    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int

    @classmethod
    def of(cls, pair: TokenPair) -> TokenRead:
        """From the service layer's pair."""
        return cls(
            access_token=pair.access_token,
            token_type=pair.token_type,
            expires_in=pair.expires_in,
            refresh_token=pair.refresh_token,
            refresh_expires_in=pair.refresh_expires_in,
        )
