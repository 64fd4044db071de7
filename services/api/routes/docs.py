"""The API's documentation page, /docs (Swagger UI), served by the app itself.

FastAPI's own page loads Swagger UI from a CDN, so it stays blank where there is no
internet, as at an offline venue. The app is built with docs_url=None, and this route
serves the same page (FastAPI's get_swagger_ui_html, as in its guide to self-hosting
the docs assets) with the files of the fastapi-offline package: Swagger UI 5, which
reads the OpenAPI 3.1 that FastAPI writes. The page carries a Content-Security-Policy
that lets it load nothing from outside the app; Swagger UI starts from an inline
script, which the policy allows by its hash.

There is no /redoc (redoc_url=None): ReDoc's bundle always fetches its logo from
cdn.redoc.ly.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs/assets"
ASSETS_DIR = Path(str(files("fastapi_offline").joinpath("static")))

_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)
_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; script-src 'self'"
)

router = APIRouter(include_in_schema=False)
router.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")


def swagger_policy(page: bytes) -> str:
    """Scripts from the app, and the page's own inline scripts by their SHA-256."""
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(page)
    )
    return f"{_POLICY}{hashes}"


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    app: FastAPI = request.app
    if app.openapi_url is None:
        raise HTTPException(status_code=404, detail="this app publishes no OpenAPI document")
    root = str(request.scope.get("root_path", "")).rstrip("/")
    page = get_swagger_ui_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        init_oauth=app.swagger_ui_init_oauth,
        # No badge from the online validator at swagger.io.
        swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
    )
    page.headers["Content-Security-Policy"] = swagger_policy(bytes(page.body))
    return page
