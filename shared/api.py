"""Helpers for the FastAPI apps that mount the services' routers."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

__all__ = ["install_error_handlers"]


def install_error_handlers(app: FastAPI) -> None:
    """Make validation errors safe to send back, whatever the client sent.

    FastAPI echoes the rejected input in a 422 response. An input holding a
    lone surrogate (valid in JSON as ``"\\ud800"``, invalid in UTF-8) then
    fails to encode and the client gets a 500 instead of the 422.
    """
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [_encodable(error) for error in jsonable_encoder(exc.errors())]
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": errors}
    )


# A rejected input is echoed back cut to this length, so a huge text is not returned whole.
_MAX_ECHO_CHARS = 200


def _encodable(value: Any) -> Any:
    if isinstance(value, str):
        if len(value) > _MAX_ECHO_CHARS:
            value = value[:_MAX_ECHO_CHARS] + f"... ({len(value)} characters)"
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {key: _encodable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_encodable(item) for item in value]
    return value
