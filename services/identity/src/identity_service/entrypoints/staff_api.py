"""Staff login API (工作人员登录): username, password and captcha; tokens carry roles and cps.

Refresh and logout are the shared `/api/identity/token` and `/api/identity/logout` endpoints:
`Tokens.rotate` re-reads a staff account's current roles and confirmation points.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from identity_service import bootstrap
from identity_service.entrypoints.schemas import Strict, TokenRead
from servicekit.openapi import errors


def _identity(request: Request) -> bootstrap.Identity:
    identity: bootstrap.Identity = request.app.state.identity
    return identity


Service = Annotated[bootstrap.Identity, Depends(_identity)]


class StaffLoginRequest(Strict):
    """工作人员登录: username, password and the captcha."""

    username: str = Field(min_length=1, max_length=64, description="用户名")
    password: str = Field(min_length=1, max_length=128)
    captcha_id: uuid.UUID
    captcha_answer: str = Field(min_length=1, max_length=10)


def staff_router() -> APIRouter:
    """The staff endpoints; DomainErrors are answered by the app's handler (see api.py)."""
    router = APIRouter(tags=["staff"])

    @router.post("/api/identity/staff/login", response_model=TokenRead, responses=errors(401, 429))
    async def staff_login(
        body: StaffLoginRequest, request: Request, identity: Service
    ) -> TokenRead:
        """工作人员登录: username, password and captcha; same errors as candidate login."""
        client = identity.client_of(request)
        principal = await identity.staff.login(
            body.username, body.password, body.captcha_id, body.captcha_answer, client
        )
        pair = await identity.tokens.for_staff(
            principal.staff_id, principal.roles, principal.confirmation_points
        )
        return TokenRead.of(pair)

    return router
