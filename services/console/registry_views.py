"""The models page and API: registry versions with metrics and plots, promote and roll back."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict

from shared.console import ConsoleUser, render_page, require_role
from shared.errors import IntegrityError, ModelVersionNotFoundError
from shared.registry import list_versions, promote_version, rollback_version

__all__ = ["REPORT_IMAGES", "ModelVersionPublic", "api_router", "page_router"]

logger = logging.getLogger(__name__)

# Report plots a version may carry: classifier reports and the drafter's loss curve.
REPORT_IMAGES = ("confusion_matrix.png", "training_curves.png", "training_curve.png")
# Headline metrics shown in the table when a report has them, in this order.
HEADLINE_METRICS = ("accuracy", "macro_f1", "weighted_f1", "ece", "eval_loss", "perplexity")
# The registry's own rule for names (shared.registry), checked here so a bad name gets 422.
_NAME = r"^[a-z0-9][a-z0-9._-]{0,199}$"

admin = Depends(require_role("admin"))
api_router = APIRouter(prefix="/models", tags=["models"], dependencies=[admin])
page_router = APIRouter(dependencies=[admin])


class ModelVersionPublic(BaseModel):
    """A registered model version."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    version: int
    reference: str
    task: str
    base_model: str
    method: str
    stage: str
    metrics: dict[str, Any]
    data_fingerprint: str
    created_at: dt.datetime | None = None
    stage_changed_at: dt.datetime | None = None


def _headline(metrics: dict[str, Any]) -> list[tuple[str, float]]:
    found = []
    for key in HEADLINE_METRICS:
        value = metrics.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            found.append((key, float(value)))
    return found


def _images(path: str) -> list[str]:
    report = Path(path) / "report"
    return [name for name in REPORT_IMAGES if (report / name).is_file()]


def _group_versions() -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in list_versions():
        groups.setdefault(row.name, []).append(
            {
                "row": row,
                "headline": _headline(row.metrics or {}),
                "images": _images(row.path),
            }
        )
    return [{"name": name, "versions": versions} for name, versions in groups.items()]


@api_router.get("", response_model=list[ModelVersionPublic])
def list_model_versions(
    name: Annotated[str | None, Query(max_length=200)] = None,
) -> list[ModelVersionPublic]:
    """List registered versions, newest first per name."""
    return [ModelVersionPublic.model_validate(row) for row in list_versions(name)]


def _promote(name: str, version: int) -> ModelVersionPublic:
    try:
        row = promote_version(f"{name}@{version}")
    except ModelVersionNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    except IntegrityError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    return ModelVersionPublic.model_validate(row)


def _rollback(name: str) -> ModelVersionPublic:
    try:
        row = rollback_version(name)
    except ModelVersionNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    except IntegrityError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    return ModelVersionPublic.model_validate(row)


NameParam = Annotated[str, PathParam(pattern=_NAME)]
VersionParam = Annotated[int, PathParam(ge=1, le=1_000_000)]


@api_router.post("/{name}/versions/{version}/promote", response_model=ModelVersionPublic)
def promote_model_version(name: NameParam, version: VersionParam) -> ModelVersionPublic:
    """Make a version the production one; the previous one is archived."""
    return _promote(name, version)


@api_router.post("/{name}/rollback", response_model=ModelVersionPublic)
def rollback_model(name: NameParam) -> ModelVersionPublic:
    """Put the version before the production one back in production."""
    return _rollback(name)


@page_router.get("/models", response_class=HTMLResponse)
def models_page(
    request: Request,
    message: Annotated[str, Query(max_length=500)] = "",
    error: Annotated[str, Query(max_length=2000)] = "",
) -> HTMLResponse:
    """Show every registered model with its versions, metrics and plots."""
    action, _, reference = message.partition(":")
    return render_page(
        request,
        "console/models.html",
        {"groups": _group_versions(), "action": action, "reference": reference, "error": error},
    )


@page_router.get("/models/{name}/{version}/images/{image}")
def model_image(name: NameParam, version: VersionParam, image: str) -> Response:
    """Send a plot from a version's report."""
    if image not in REPORT_IMAGES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no report image {image!r}")
    for row in list_versions(name):
        if row.version == version and image in _images(row.path):
            return FileResponse(Path(row.path) / "report" / image, media_type="image/png")
    raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"{name}@{version} has no {image}")


def _back(**query: str) -> RedirectResponse:
    return RedirectResponse(f"/models?{urlencode(query)}", status_code=status.HTTP_303_SEE_OTHER)


@page_router.post("/models/{name}/{version}/promote")
def promote_from_page(
    name: NameParam,
    version: VersionParam,
    user: Annotated[ConsoleUser, Depends(require_role("admin"))],
) -> RedirectResponse:
    """Promote a version and go back to the models page."""
    try:
        row = _promote(name, version)
    except HTTPException as exc:
        return _back(error=str(exc.detail))
    logger.info("model promoted from the console reference=%s user_id=%s", row.reference, user.id)
    return _back(message=f"promoted:{row.reference}")


@page_router.post("/models/{name}/rollback")
def rollback_from_page(
    name: NameParam, user: Annotated[ConsoleUser, Depends(require_role("admin"))]
) -> RedirectResponse:
    """Roll a model back and go back to the models page."""
    try:
        row = _rollback(name)
    except HTTPException as exc:
        return _back(error=str(exc.detail))
    logger.info(
        "model rolled back from the console reference=%s user_id=%s", row.reference, user.id
    )
    return _back(message=f"rolledback:{row.reference}")
