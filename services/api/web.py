"""What every public page shares: templates, two languages, CSRF tokens and security headers.

Pages are server-rendered and Chinese first. The English switch (`?lang=en`) is
remembered in a cookie; every text is written in both languages in the
template (`tr(zh, en)`) and the chosen one leads.

CSRF: double submit. A GET of a form page sets a random `csrf` cookie
(SameSite=Lax, HttpOnly) and puts HMAC(secret, cookie) in the form; a POST is
accepted only when the field matches the cookie's HMAC. A page on another
site can make the browser send the cookie but cannot read it to forge the field.

Security headers: a Content-Security-Policy that lets pages load only the app's
own files (no inline script or style at all, no CDN: venues may be offline),
and may submit forms only to the app and the payment provider's pay page.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.ledger.read import Money

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
CSRF_COOKIE = "csrf"
LANG_COOKIE = "lang"
LANGS = ("zh", "en")

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["yuan"] = lambda fen, currency="CNY": Money(int(fen), currency).format_yuan()


def load_or_create_secret(path: Path) -> bytes:
    """The key of the CSRF tokens and client hashes: random, per installation, never in git.

    Several API processes behind one load balancer must share the file.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two processes starting at once must not both write a different secret.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32))
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise ValueError(f"{path}: the web secret is too short (CHARITY_WEB_SECRET_PATH)")
    return secret.encode()


def keyed_hash(secret: bytes, value: str) -> str:
    return hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()


def language(request: Request) -> str:
    chosen = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE) or "zh"
    return chosen if chosen in LANGS else "zh"


def tr_for(lang: str) -> Callable[[str, str], Markup]:
    """Both languages, the chosen one first; the other smaller, for a reader of either."""

    def tr(zh: str, en: str) -> Markup:
        first, second, first_lang, second_lang = (
            (zh, en, "zh-CN", "en") if lang == "zh" else (en, zh, "en", "zh-CN")
        )
        return Markup('<span lang="{}">{}</span> <span class="alt" lang="{}">{}</span>').format(
            first_lang, escape(first), second_lang, escape(second)
        )

    return tr


def csrf_token(secret: bytes, cookie: str) -> str:
    return keyed_hash(secret, "csrf:" + cookie)


def check_csrf(request: Request, secret: bytes, token: str) -> None:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(csrf_token(secret, cookie).encode(), token.encode()):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "表单已过期，请刷新页面后重试 · the form expired or did not come from this site; "
            "reload it and try again",
        )


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page in the request's language, with a CSRF token for its forms."""
    secret: bytes = request.app.state.web_secret
    lang = language(request)
    cookie = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = templates.TemplateResponse(
        request,
        name,
        {**context, "lang": lang, "tr": tr_for(lang), "csrf": csrf_token(secret, cookie)},
        status_code=status_code,
    )
    secure = request.app.state.settings.public_base_url.startswith("https://")
    response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="lax", secure=secure, max_age=86400)
    if request.query_params.get("lang") in LANGS:
        response.set_cookie(LANG_COOKIE, lang, samesite="lax", max_age=365 * 86400)
    return response


def content_security_policy(payment_base_url: str) -> str:
    pay = urlsplit(payment_base_url)
    pay_origin = f"{pay.scheme}://{pay.netloc}"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self'; form-action 'self' {pay_origin}; frame-ancestors 'none'; base-uri 'none'"
    )


def install_web(app: FastAPI, payment_base_url: str) -> None:
    """Serve /static and put the security headers on every page the app answers."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(SecurityHeaders, policy=content_security_policy(payment_base_url))


class SecurityHeaders:
    """The security headers on every HTTP answer, where the route set none of its own
    (/docs sets a stricter policy: routes/docs.py).

    A plain ASGI middleware: Starlette's `@app.middleware("http")` (BaseHTTPMiddleware)
    runs every request through an extra task and a re-streamed body, which was about a
    tenth of the API's CPU per payment notification (docs/benchmarks.md)."""

    def __init__(self, app: ASGIApp, policy: str) -> None:
        self.app = app
        self.headers = (
            ("Content-Security-Policy", policy),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "same-origin"),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers:
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
