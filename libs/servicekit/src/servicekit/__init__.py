"""HTTP platform shared by the services: errors, limits, request context, health, metrics, auth."""

from servicekit.app import create_app
from servicekit.auth import (
    CurrentCandidate,
    CurrentPrincipal,
    CurrentStaff,
    JwksClient,
    Principal,
    StaticKeys,
    TokenVerifier,
    bearer_principal,
    current_candidate,
    current_staff,
    require_roles,
)
from servicekit.errors import AppError, ErrorBody, FieldError, install_error_handlers

__all__ = [
    "AppError",
    "CurrentCandidate",
    "CurrentPrincipal",
    "CurrentStaff",
    "ErrorBody",
    "FieldError",
    "JwksClient",
    "Principal",
    "StaticKeys",
    "TokenVerifier",
    "bearer_principal",
    "create_app",
    "current_candidate",
    "current_staff",
    "install_error_handlers",
    "require_roles",
]
