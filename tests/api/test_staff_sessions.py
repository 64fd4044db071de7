"""Staff log-in over HTTP: sessions, their cookie, expiry, log-out, stale forms and lock-out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.staff.domain.roles import Role
from tests.fixtures.staff import PASSWORD, StaffApp, csrf_of, log_in, staff_app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[StaffApp]:
    with staff_app(tmp_path) as made:
        made.add("ada", Role.ADMINISTRATOR)
        yield made


def decisions(app: StaffApp) -> list[tuple[str | None, str, str, str]]:
    """The access log, oldest first: (who, action, decision, detail)."""
    return [(r.actor, r.action, r.decision, r.detail) for r in reversed(app.store.access_log())]


def test_a_person_logs_in_sees_who_they_are_and_logs_out(app: StaffApp) -> None:
    answer = log_in(app.client, "ada")
    assert answer.status_code == 303 and answer.headers["location"] == "/staff"
    cookie = answer.headers["set-cookie"]
    assert "staff_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie  # http://127.0.0.1 in tests; see the https test below
    home = app.client.get("/staff")
    assert home.status_code == 200 and "ada" in home.text and "administrator" in home.text
    assert "管理员" in home.text and "Content-Security-Policy" in home.headers
    out = app.client.post("/staff/logout", data={"csrf": csrf_of(home.text)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/staff/login"
    # The cookie is gone from the browser and the session from the server.
    assert app.client.get("/staff", follow_redirects=False).headers["location"] == "/staff/login"
    assert [d[:3] for d in decisions(app)] == [
        ("ada", "login", "allowed"),
        ("ada", "logout", "allowed"),
        (None, "access", "refused"),
    ]


def test_a_session_cookie_replayed_after_log_out_is_worthless(app: StaffApp) -> None:
    log_in(app.client, "ada")
    token = app.client.cookies["staff_session"]
    home = app.client.get("/staff")
    app.client.post("/staff/logout", data={"csrf": csrf_of(home.text)})
    app.client.cookies.set("staff_session", token)
    assert app.client.get("/staff", follow_redirects=False).status_code == 303


def test_the_cookie_is_secure_when_the_public_address_is_https(tmp_path: Path) -> None:
    with staff_app(tmp_path, public_base_url="https://charity.example") as made:
        made.add("ada", Role.ADMINISTRATOR)
        assert "Secure" in log_in(made.client, "ada").headers["set-cookie"]


def test_a_session_expires_after_idling_and_after_its_lifetime(app: StaffApp) -> None:
    log_in(app.client, "ada")
    app.clock.advance(29 * 60)
    assert app.client.get("/staff").status_code == 200  # used: the idle timer starts again
    app.clock.advance(30 * 60)
    assert app.client.get("/staff", follow_redirects=False).headers["location"] == "/staff/login"
    log_in(app.client, "ada")
    for _ in range(16):  # busy all day: every 29 minutes, 7 h 44 min in all
        app.clock.advance(29 * 60)
        assert app.client.get("/staff").status_code == 200
    app.clock.advance(16 * 60)  # 8 h after log-in
    assert app.client.get("/staff", follow_redirects=False).status_code == 303


def test_a_stale_or_missing_csrf_token_logs_nobody_in(app: StaffApp) -> None:
    app.client.get("/staff/login")
    for token in ("", "0" * 64):
        answer = app.client.post(
            "/staff/login",
            data={"username": "ada", "password": PASSWORD, "csrf": token},
            follow_redirects=False,
        )
        assert answer.status_code == 403 and "表单已过期" in answer.text
        assert "staff_session" not in answer.headers.get("set-cookie", "")
    # A token from another browser's cookie is stale here too.
    other = csrf_of(app.client.get("/staff/login").text)
    app.client.cookies.set("csrf", "another-browser")
    answer = app.client.post("/staff/login", data={"username": "ada", "password": PASSWORD, "csrf": other})
    assert answer.status_code == 403
    assert [d[1:] for d in decisions(app)] == [("login", "refused", "stale or missing CSRF token")] * 3


def test_log_out_needs_the_forms_csrf_token(app: StaffApp) -> None:
    log_in(app.client, "ada")
    assert app.client.post("/staff/logout", data={"csrf": "0" * 64}).status_code == 403
    assert app.client.get("/staff").status_code == 200  # still logged in


def test_wrong_passwords_lock_the_account_with_back_off(app: StaffApp) -> None:
    for _ in range(5):
        answer = log_in(app.client, "ada", "not the password at all")
        assert answer.status_code == 401 and "用户名或密码不正确" in answer.text
    # Locked: even the right password is refused, and the answer is the same as a wrong one.
    locked = log_in(app.client, "ada")
    assert locked.status_code == 401 and "staff_session" not in locked.headers.get("set-cookie", "")
    app.clock.advance(29)
    assert log_in(app.client, "ada").status_code == 401
    app.clock.advance(1)  # 30 s after the fifth failure
    assert log_in(app.client, "ada").status_code == 303
    details = [d[3] for d in decisions(app) if d[1] == "login"]
    assert details == ["bad password"] * 5 + ["locked out"] * 2 + [""]


def test_the_wait_doubles_after_each_further_failure(app: StaffApp) -> None:
    for _ in range(5):
        log_in(app.client, "ada", "not the password at all")
    app.clock.advance(30)
    assert log_in(app.client, "ada", "still not the password").status_code == 401  # sixth: 60 s
    app.clock.advance(59)
    assert log_in(app.client, "ada").status_code == 401
    app.clock.advance(1)
    assert log_in(app.client, "ada").status_code == 303


def test_unknown_and_disabled_accounts_get_the_same_answer_as_a_wrong_password(app: StaffApp) -> None:
    app.add("old", Role.AUDITOR)
    app.store.disable("old", app.clock())
    wrong = log_in(app.client, "ada", "not the password at all")
    for username in ("nobody", "old"):
        answer = log_in(app.client, username)
        assert (answer.status_code, answer.text) == (wrong.status_code, wrong.text.replace("ada", username))
    assert [d[3] for d in decisions(app)] == ["bad password", "unknown username", "disabled"]


def test_disabling_an_account_ends_its_session_at_once(app: StaffApp) -> None:
    log_in(app.client, "ada")
    app.store.disable("ada", app.clock())
    assert app.client.get("/staff", follow_redirects=False).status_code == 303


def test_logging_in_again_ends_the_session_the_browser_had(app: StaffApp) -> None:
    log_in(app.client, "ada")
    planted = app.client.cookies["staff_session"]
    log_in(app.client, "ada")
    assert app.client.cookies["staff_session"] != planted
    app.client.cookies.set("staff_session", planted)
    assert app.client.get("/staff", follow_redirects=False).status_code == 303
