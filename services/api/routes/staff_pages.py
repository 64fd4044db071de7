"""The staff console's pages: log in, log out, who is logged in, and the access log.

Forms post here with a CSRF token. The session cookie is HttpOnly (scripts
never see it), SameSite=Strict (no other site's page or link sends it) and
Secure when the public address is https.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.api.deps import WebSecretDep
from services.api.errors import page_errors
from services.api.staff_auth import SESSION_COOKIE, Actor, StaffAuthDep, require_page
from services.api.web import check_csrf, render
from services.staff.domain.roles import GRANTS, Permission

# Forms for people, not an API: kept out of the OpenAPI document (so out of Schemathesis's reach;
# tests/api/test_staff_authorization.py walks them from the app's routes).
router = APIRouter(prefix="/staff", tags=["pages", "staff"], include_in_schema=False)

ROLE_ZH = {
    "administrator": "管理员",
    "project_manager": "项目负责人",
    "finance_officer": "财务人员",
    "auditor": "审计人员",
    "venue_operator": "场地操作员",
}
LOGIN_REFUSED = (
    "用户名或密码不正确，或账户暂时锁定 · wrong username or password, or the account is locked for now"
)

ConsoleActor = Annotated[Actor, Depends(require_page(Permission.VIEW_CONSOLE))]
AuditActor = Annotated[Actor, Depends(require_page(Permission.READ_ACCESS_LOG))]


@router.get("/login", response_class=HTMLResponse, responses=page_errors({}))
def login_page(request: Request) -> HTMLResponse:
    return render(request, "staff_login.html")


@router.post(
    "/login",
    response_class=HTMLResponse,
    responses=page_errors(
        {
            303: "logged in: on to the console, with the session cookie",
            401: "wrong username or password, or locked out; the form is shown again",
            403: "the form's CSRF token does not match (an old form, or another site's)",
            422: "a field is too long",
        }
    ),
)
async def login(
    request: Request,
    auth: StaffAuthDep,
    secret: WebSecretDep,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    try:
        check_csrf(request, secret, csrf)
    except HTTPException as refused:
        await asyncio.to_thread(auth.log, request, None, "login", "refused", "stale or missing CSRF token")
        return render(request, "staff_login.html", status.HTTP_403_FORBIDDEN, error=str(refused.detail))
    result = await asyncio.to_thread(auth.login, request, username.strip().lower(), password)
    if result.person is None or result.token is None:
        return render(
            request, "staff_login.html", status.HTTP_401_UNAUTHORIZED, error=LOGIN_REFUSED, username=username
        )
    response = RedirectResponse("/staff", status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        SESSION_COOKIE,
        result.token,
        httponly=True,
        samesite="strict",
        secure=auth.secure_cookie,
        max_age=auth.settings.staff_session_lifetime_s,
    )
    return response


@router.post(
    "/logout",
    responses=page_errors(
        {
            303: "logged out: on to the log-in page",
            403: "the form's CSRF token does not match (an old form, or another site's)",
            422: "a field is too long",
        }
    ),
)
async def logout(
    request: Request,
    auth: StaffAuthDep,
    secret: WebSecretDep,
    csrf: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    check_csrf(request, secret, csrf)
    await asyncio.to_thread(auth.logout, request)
    response = RedirectResponse("/staff/login", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict", secure=auth.secure_cookie)
    return response


@router.get("", response_class=HTMLResponse, responses=page_errors({403: "no access to the console"}))
def home(request: Request, actor: ConsoleActor) -> HTMLResponse:
    person = actor.person
    assert person is not None  # pages take no machine client
    return render(
        request,
        "staff_home.html",
        person=person,
        role_zh=ROLE_ZH[person.role],
        permissions=sorted(GRANTS[person.role]),
    )


@router.get(
    "/access-log",
    response_class=HTMLResponse,
    responses=page_errors({403: "only auditors and administrators"}),
)
def access_log(request: Request, actor: AuditActor, auth: StaffAuthDep) -> HTMLResponse:
    # The log names staff and their addresses: reading it is itself a read of personal data.
    auth.log(request, actor.name, "personal_data", "allowed", "access log")
    return render(request, "staff_access_log.html", person=actor.person, records=auth.store.access_log())
