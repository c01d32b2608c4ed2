"""Identity's HTTP API: captcha, registration, login, token refresh, logout, JWKS."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Request, Response, status
from pydantic import BaseModel, Field

from eventkit.logs import configure_logging
from eventkit.settings import PlatformSettings
from identity_service import bootstrap
from identity_service.adapters.signing_keys import PublishedKeys
from identity_service.entrypoints.profile_api import profile_router
from identity_service.entrypoints.schemas import Strict, TokenRead
from identity_service.entrypoints.staff_api import staff_router
from identity_service.service_layer.accounts import (
    LoginCandidate,
    RegisterCandidate,
)
from identity_service.service_layer.sms_codes import Purpose, SendSmsCode
from identity_service.service_layer.tokens import ISSUER
from servicekit.app import Startup, create_app
from servicekit.auth import TokenVerifier
from servicekit.health import platform_kafka_check
from servicekit.openapi import errors


class CaptchaRead(BaseModel):
    """A captcha image to show and the id to send back with the answer."""

    captcha_id: uuid.UUID
    image: str = Field(description="data:image/png;base64,...")
    expires_in: int


class CandidateCreate(Strict):
    """注册: the roster data to match, the new password and mobile number, and the captcha."""

    ticket_number: str = Field(min_length=1, max_length=32, description="准考证号")
    id_number: str = Field(min_length=1, max_length=32, description="身份证号")
    name: str = Field(min_length=1, max_length=50, description="姓名")
    password: str = Field(min_length=1, max_length=128)
    mobile: str = Field(min_length=1, max_length=20, description="手机号码")
    sms_code: str = Field(
        min_length=1, max_length=10, description="短信验证码, from POST /api/identity/sms-codes"
    )
    captcha_id: uuid.UUID = Field(description="from GET /api/identity/captcha")
    captcha_answer: str = Field(min_length=1, max_length=10, description="验证码")


class SmsCodeCreate(Strict):
    """获取短信验证码: the mobile number, what the code is for, and a solved captcha."""

    mobile: str = Field(min_length=1, max_length=20, description="手机号码")
    purpose: Literal["register"] = Field(description="register: 考生注册")
    captcha_id: uuid.UUID = Field(description="from GET /api/identity/captcha")
    captcha_answer: str = Field(min_length=1, max_length=10, description="验证码")


class SmsCodeSent(BaseModel):
    """Where the code went (masked) and how long it lasts; the same whether or not an account
    exists for the number."""

    mobile_masked: str = Field(description="e.g. 138****5678")
    expires_in: int


class CandidateCreated(BaseModel):
    """The new account's id."""

    candidate_id: uuid.UUID


class LoginRequest(Strict):
    """登录: 身份证号 or 准考证号, password and the captcha."""

    identifier: str = Field(min_length=1, max_length=32)
    password: str = Field(min_length=1, max_length=128)
    captcha_id: uuid.UUID
    captcha_answer: str = Field(min_length=1, max_length=10)


class RefreshRequest(Strict):
    """A refresh token to spend (refresh) or to end (logout)."""

    refresh_token: str = Field(min_length=1, max_length=200)


def _identity(request: Request) -> bootstrap.Identity:
    identity: bootstrap.Identity = request.app.state.identity
    return identity


Service = Annotated[bootstrap.Identity, Depends(_identity)]


def attach(app: FastAPI, identity: bootstrap.Identity) -> None:
    """Give the app its wired service, and verify tokens against identity's own keys."""
    app.state.identity = identity
    app.state.token_verifier = TokenVerifier(PublishedKeys(identity.keys), issuer=ISSUER)


def build_app(start: Callable[[], Awaitable[bootstrap.Identity]] = bootstrap.start) -> FastAPI:
    """The identity API; `start` builds the wired service at startup (tests give their own)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        platform = PlatformSettings()
        configure_logging("identity", platform.log_level, json_lines=platform.log_json)
        # While PostgreSQL is away the API serves 503s and starts once it is back (Startup).
        startup = Startup(app, "identity", start, lambda identity: attach(app, identity))
        try:
            async with startup:
                yield
        finally:
            if startup.service is not None:
                await startup.service.close()

    async def database_ready() -> None:
        await app.state.identity.pool.fetchval("SELECT 1")

    app = create_app(
        "identity",
        version="0.1.0",
        max_body_bytes=16 * 1024,
        health_checks={"postgres": database_ready},
        advisory_checks={"kafka": platform_kafka_check()},  # the outbox holds writes
        lifespan=lifespan,
    )

    @app.get(
        "/api/identity/captcha", response_model=CaptchaRead, tags=["login"], responses=errors(429)
    )
    async def new_captcha(identity: Service, response: Response) -> CaptchaRead:
        """获取验证码: a one-time image captcha."""
        captcha = await identity.captchas.issue()
        response.headers["Cache-Control"] = "no-store"
        image = base64.b64encode(captcha.png).decode("ascii")
        return CaptchaRead(
            captcha_id=captcha.captcha_id,
            image=f"data:image/png;base64,{image}",
            expires_in=captcha.expires_in,
        )

    @app.post(
        "/api/identity/sms-codes",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=SmsCodeSent,
        tags=["registration"],
        responses=errors(429, 503),
    )
    async def send_sms_code(
        body: SmsCodeCreate, request: Request, identity: Service
    ) -> SmsCodeSent:
        """获取短信验证码: a 6-digit code to the mobile number, 5 minutes, one use (captcha;
        throttled per number and per client address; 503 with Retry-After when the SMS gateway
        is away)."""
        sent = await identity.sms_codes.send(
            SendSmsCode(
                mobile=body.mobile,
                purpose=Purpose(body.purpose),
                captcha_id=body.captcha_id,
                captcha_answer=body.captcha_answer,
                client=identity.client_of(request),
            )
        )
        return SmsCodeSent(mobile_masked=sent.mobile_masked, expires_in=sent.expires_in)

    @app.post(
        "/api/identity/candidates",
        status_code=status.HTTP_201_CREATED,
        response_model=CandidateCreated,
        tags=["registration"],
        responses=errors(429),
    )
    async def register(
        body: CandidateCreate, request: Request, identity: Service
    ) -> CandidateCreated:
        """考生注册: an enrolled candidate creates an account (captcha and the SMS code sent to
        the mobile number; throttled per roster entry and per client address)."""
        candidate_id = await identity.accounts.register(
            RegisterCandidate(
                ticket_number=body.ticket_number,
                id_number=body.id_number,
                name=body.name,
                password=body.password,
                mobile=body.mobile,
                sms_code=body.sms_code,
                captcha_id=body.captcha_id,
                captcha_answer=body.captcha_answer,
                client=identity.client_of(request),
            )
        )
        return CandidateCreated(candidate_id=candidate_id)

    @app.post(
        "/api/identity/login", response_model=TokenRead, tags=["login"], responses=errors(401, 429)
    )
    async def login(body: LoginRequest, request: Request, identity: Service) -> TokenRead:
        """考生登录: ID number or ticket number, password and captcha."""
        client = identity.client_of(request)
        candidate_id = await identity.accounts.login(
            LoginCandidate(
                identifier=body.identifier,
                password=body.password,
                captcha_id=body.captcha_id,
                captcha_answer=body.captcha_answer,
                client=client,
            )
        )
        return TokenRead.of(await identity.tokens.for_candidate(str(candidate_id)))

    @app.post(
        "/api/identity/token", response_model=TokenRead, tags=["login"], responses=errors(401)
    )
    async def refresh(body: RefreshRequest, identity: Service) -> TokenRead:
        """换取新令牌: spend a refresh token for a new pair."""
        return TokenRead.of(await identity.tokens.rotate(body.refresh_token))

    @app.post(
        "/api/identity/logout",
        status_code=status.HTTP_204_NO_CONTENT,
        tags=["login"],
        responses=errors(401),
    )
    async def logout(body: RefreshRequest, identity: Service) -> Response:
        """退出登录: end the refresh token's family."""
        await identity.tokens.logout(body.refresh_token)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    app.include_router(profile_router())
    app.include_router(staff_router())

    @app.get("/.well-known/jwks.json", tags=["tokens"])
    async def jwks(identity: Service, response: Response) -> dict[str, list[dict[str, str]]]:
        """The public keys that verify identity's tokens."""
        response.headers["Cache-Control"] = "public, max-age=60"
        return await identity.keys.jwks()

    return app


app = build_app()
