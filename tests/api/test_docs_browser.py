"""/docs in headless Chromium with the internet cut off, as at an offline venue.

The API is the one `charity-ledger api` builds, served by uvicorn on a free port. Every
request the browser makes to a host other than loopback is aborted and recorded: Swagger
UI must render from the app's own files, under the page's Content-Security-Policy.
The screenshot goes to docs/screenshots/api-docs.png.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from services.api.main import build
from services.platform.free_ports import free_ports
from services.platform.http_thread import serve_in_thread
from services.platform.settings import Settings
from tests.fixtures.browser import DOCS_SHOTS, chromium

pytestmark = pytest.mark.integration

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout}s")
        time.sleep(0.05)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def api_url(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    database = tmp_path_factory.mktemp("docs") / "ledger.db"
    settings = Settings(
        database_url=f"sqlite:///{database}", kafka_bootstrap=kafka_bootstrap, payment_provider="none"
    )
    port = free_ports(1)[0]
    server = serve_in_thread(build(settings), "127.0.0.1", port)
    _wait(lambda: server.started, 30, "the API to listen")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    _wait(lambda: not _listening(port), 30, "the API to stop")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


class OfflinePage:
    """A page whose requests beyond loopback fail, with what it asked for and complained of."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
        self.requested: list[str] = []
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("request", lambda request: self.requested.append(request.url))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        # Chromium reports a Content-Security-Policy violation as a console error.
        self.page.on(
            "console", lambda message: self.errors.append(message.text) if message.type == "error" else None
        )

    def _route(self, route: Any) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort("internetdisconnected")

    def outside(self, origin: str) -> list[str]:
        """Requests not to the app (data: and blob: URLs stay inside the page)."""
        return [
            url
            for url in self.requested
            if not url.startswith((f"{origin}/", "data:", "blob:")) and url != origin
        ]


@pytest.fixture
def offline(browser: Any) -> Iterator[OfflinePage]:
    page = OfflinePage(browser)
    yield page
    page.context.close()


def _operations(api_url: str) -> list[tuple[str, str]]:
    document = httpx.get(f"{api_url}/openapi.json", timeout=10).json()
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    ]


def test_swagger_ui_renders_every_operation_offline(api_url: str, offline: OfflinePage) -> None:
    operations = _operations(api_url)
    assert len(operations) > 10

    response = offline.page.goto(f"{api_url}/docs")
    assert response.status == 200
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self' 'sha256-" in policy
    offline.page.wait_for_selector(".opblock", timeout=20_000)
    # Swagger UI renders the tags expanded: one block per operation.
    assert offline.page.locator(".opblock").count() == len(operations)
    assert "慈善捐赠账本" in offline.page.locator(".information-container .title").inner_text()
    for method, path in operations[:3]:
        block = offline.page.locator(f".opblock-{method.lower()}", has_text=path).first
        assert block.is_visible(), (method, path)
    offline.page.screenshot(path=str(DOCS_SHOTS / "api-docs.png"))

    # "Try it out" works under the policy: Swagger UI calls the app and shows the answer.
    health = offline.page.locator(".opblock-get", has_text="/healthz").first
    health.locator(".opblock-summary").click()
    health.get_by_role("button", name="Try it out").click()
    health.get_by_role("button", name="Execute").click()
    status = health.locator(".live-responses-table .response .response-col_status").first
    status.wait_for(timeout=10_000)
    assert status.inner_text().strip() == "200"

    assert offline.blocked == []
    assert offline.outside(api_url) == []
    assert offline.errors == []


def test_the_docs_assets_are_the_apps_own(api_url: str) -> None:
    page = httpx.get(f"{api_url}/docs", timeout=10).text
    assert "cdn." not in page and "https://" not in page
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
        assert httpx.get(f"{api_url}/docs/assets/{asset}", timeout=10).status_code == 200, asset
    assert httpx.get(f"{api_url}/docs/assets/../../settings.py", timeout=10).status_code == 404
    # ReDoc's bundle fetches its logo from cdn.redoc.ly, whatever it is told: not served.
    assert httpx.get(f"{api_url}/redoc", timeout=10).status_code == 404
