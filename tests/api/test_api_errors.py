"""Bad input gets a 4xx naming the problem; an unreachable broker gets a 503. Nothing is published."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.producer import BrokerUnavailable, KafkaEventPublisher
from services.contracts.events import Event, ProjectRegistered
from services.contracts.topics import Topics
from services.ledger.adapters.store import LedgerStore
from services.ledger.read.queries import LedgerQueries
from services.ledger.service.processor import BatchProcessor
from services.platform.db import make_engine
from services.platform.settings import Settings
from tests.api.test_end_to_end import project_body
from tests.fixtures import factories as f
from tests.fixtures.kafka import free_ports
from tests.fixtures.outputs import RecordingOutput
from tests.ledger.ops.test_verify_and_rebuild import feed

STAFF = {"Authorization": "Bearer s3cret"}


@pytest.fixture
def http(tmp_path: Path) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = LedgerStore(make_engine(url))
    store.migrate()
    feed(
        BatchProcessor(store, RecordingOutput(), Topics(""), "g"),
        [*f.opened_project("open"), f.registered("new")],
    )
    # Nothing listens on this port: any publish must fail with a 503.
    dead_broker = f"127.0.0.1:{free_ports(1)[0]}"
    settings = Settings(
        database_url=url,
        staff_token="s3cret",
        kafka_bootstrap=dead_broker,
        produce_timeout_s=1.0,
        internal_donations_enabled=True,
    )
    app = create_app(
        settings,
        LedgerQueries(make_engine(url, writer=False)),
        KafkaEventPublisher(dead_broker, Topics(""), timeout_s=1.0),
        {},
    )
    with TestClient(app) as client:
        yield client


def gift(**overrides: object) -> dict[str, object]:
    return {
        "project_id": "open",
        "donation_id": "d1",
        "provider_charge_id": "c1",
        "gross_fen": 5000,
        **overrides,
    }


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"gross_fen": 50.5}, "gross_fen", "valid integer"),
        ({"gross_fen": "5000"}, "gross_fen", "valid integer"),
        ({"gross_fen": -1}, "gross_fen", "greater than 0"),
        ({"gross_fen": 0}, "gross_fen", "greater than 0"),
        ({"currency": "RMB"}, "currency", "unknown currency 'RMB'"),
        ({"donation_id": "x" * 65}, "donation_id", "pattern"),
        ({"display_name": "名" * 51}, "display_name", "at most 50"),
        ({"fee_fen": 6000}, "body", "fee_fen exceeds gross_fen"),
        ({"channel": "fax"}, "channel", "unknown channel 'fax'"),
        ({"anonymity": "loud"}, "anonymity", "unknown anonymity 'loud'"),
        ({"anonymity": "named"}, "body", "needs the display_name"),
        ({"display_name": "王\x1b[2J"}, "display_name", "U+001B"),
        ({"message": "\u202eevil"}, "message", "U+202E"),
        ({"surprise": 1}, "surprise", "Extra inputs"),
        ({"confirmed_at": "2026-06-01T12:00:00"}, "confirmed_at", "timezone"),
        ({"confirmed_at": "1780000000"}, "confirmed_at", "not a number"),
        ({"confirmed_at": "2999-01-01T00:00:00Z"}, "body", "confirmed_at is more than 300 s in the future"),
        ({"confirmed_at": "9999-12-31T23:59:59-01:00"}, "body", "more than 300 s in the future"),
        ({"confirmed_at": "0001-01-01T00:00:00+01:00"}, "body", "confirmed_at is more than 30 days old"),
    ],
)
def test_invalid_donations_are_refused_with_the_field_named(
    http: TestClient, overrides: dict[str, object], field: str, words: str
) -> None:
    response = http.post("/api/internal/donations/confirmed", json=gift(**overrides), headers=STAFF)
    assert response.status_code == 422
    problems = response.json()["problems"]
    assert any(p["field"] == field and words in p["problem"] for p in problems), problems


def test_the_stand_in_payment_endpoint_is_not_public(http: TestClient) -> None:
    assert http.post("/api/internal/donations/confirmed", json=gift()).status_code == 401
    wrong = {"Authorization": "Bearer guess"}
    assert http.post("/api/internal/donations/confirmed", json=gift(), headers=wrong).status_code == 401
    # Not ASCII: refused like any wrong token, not a server error.
    odd = {"Authorization": "Bearer gu\u00e9ss".encode("latin-1")}
    assert http.post("/api/internal/donations/confirmed", json=gift(), headers=odd).status_code == 401  # type: ignore[arg-type]


def test_unknown_or_closed_projects_are_refused(http: TestClient) -> None:
    response = http.post("/api/internal/donations/confirmed", json=gift(project_id="ghost"), headers=STAFF)
    assert response.status_code == 404 and "unknown project 'ghost'" in response.json()["detail"]
    response = http.post("/api/internal/donations/confirmed", json=gift(project_id="new"), headers=STAFF)
    assert response.status_code == 409 and "not fundraising" in response.json()["detail"]
    assert http.get("/api/projects/ghost/totals").status_code == 404


def test_a_broker_that_does_not_acknowledge_gives_503_and_retry_after(http: TestClient) -> None:
    response = http.post("/api/internal/donations/confirmed", json=gift(), headers=STAFF)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "nothing was recorded" in response.json()["detail"]


class UnacknowledgingPublisher:
    """A broker that took the event but never acknowledged it."""

    async def publish(self, event: Event) -> None:
        raise BrokerUnavailable("no acknowledgement within 10 s", maybe_recorded=True)

    def close(self) -> None:
        pass


def test_an_event_sent_but_not_acknowledged_gives_503_saying_it_may_still_land(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    store = LedgerStore(make_engine(url))
    store.migrate()
    feed(BatchProcessor(store, RecordingOutput(), Topics(""), "g"), f.opened_project("open"))
    settings = Settings(database_url=url, staff_token="s3cret", internal_donations_enabled=True)
    app = create_app(settings, LedgerQueries(make_engine(url, writer=False)), UnacknowledgingPublisher(), {})
    with TestClient(app) as client:
        response = client.post("/api/internal/donations/confirmed", json=gift(), headers=STAFF)
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    detail = response.json()["detail"]
    assert "may still be recorded" in detail and "nothing was recorded" not in detail


def test_a_request_waiting_for_the_broker_does_not_hold_up_others(http: TestClient) -> None:
    """The routes that publish run on the event loop: what can block on a dead broker must not."""

    async def scenario() -> tuple[int, bool, int]:
        transport = httpx.ASGITransport(app=http.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            post = client.post("/api/internal/donations/confirmed", json=gift(), headers=STAFF)
            waiting = asyncio.create_task(post)
            await asyncio.sleep(0.05)  # it is now waiting for a broker that never answers (1 s)
            read = await client.get("/api/projects/open/totals")
            return read.status_code, waiting.done(), (await waiting).status_code

    read, publish_finished_first, publish = asyncio.run(scenario())
    assert read == 200
    assert not publish_finished_first
    assert publish == 503


def test_registration_validates_the_plan(http: TestClient) -> None:
    body = plan("p9", name="", goal_fen=1.5, starts_on="2026-05-01", ends_on="2026-01-01")
    problems = http.post("/api/projects", json=body, headers=STAFF).json()["problems"]
    fields = {p["field"] for p in problems}
    assert {"name", "goal_fen"} <= fields


def test_staff_endpoints_are_closed_without_a_configured_token(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    LedgerStore(make_engine(url)).migrate()
    app = create_app(
        Settings(database_url=url, staff_token="", internal_donations_enabled=True),
        LedgerQueries(make_engine(url, writer=False)),
        KafkaEventPublisher("127.0.0.1:1", Topics("")),
        {},
    )
    with TestClient(app) as client:
        response = client.post("/api/internal/donations/confirmed", json=gift(), headers=STAFF)
    assert response.status_code == 403 and "disabled" in response.json()["detail"]


def test_every_error_has_the_same_body(http: TestClient) -> None:
    """detail and problems, whatever answered: a route, the validation, or the router."""
    for response in (
        http.post("/api/internal/donations/confirmed", json=gift(currency="RMB"), headers=STAFF),
        http.post("/api/internal/donations/confirmed", json=gift()),
        http.get("/api/projects/ghost/totals"),
        http.get("/no/such/page"),
        http.delete("/api/projects"),
    ):
        body = response.json()
        assert set(body) == {"detail", "problems"} and isinstance(body["detail"], str), response


def test_an_unknown_currency_is_refused_naming_the_field(http: TestClient) -> None:
    response = http.post("/api/projects", json=plan("p9", currency="RMB"), headers=STAFF)
    assert response.status_code == 422
    assert response.json()["problems"] == [
        {"field": "currency", "problem": "Value error, unknown currency 'RMB'; accepted: CNY, EUR, HKD, USD"}
    ]


def test_a_project_id_already_registered_is_refused_with_409(http: TestClient) -> None:
    """Checked before anything is published: the dead broker of this fixture is never asked."""
    for taken in ("open", "new"):
        response = http.post("/api/projects", json=plan(taken), headers=STAFF)
        assert response.status_code == 409, response.text
        assert response.json()["detail"] == f"project {taken!r} is already registered; nothing was published"


def test_a_gift_in_another_currency_than_the_projects_is_a_conflict(http: TestClient) -> None:
    response = http.post("/api/internal/donations/confirmed", json=gift(currency="HKD"), headers=STAFF)
    assert response.status_code == 409
    assert response.json()["detail"] == "currency HKD does not match the project's CNY"


def test_tree_sizes_beyond_64_bits_are_refused_not_a_server_error(http: TestClient) -> None:
    for first, second in ((2**63, 1), (1, 2**63), (10**40, 10**40)):
        response = http.get("/api/transparency/consistency", params={"first": first, "second": second})
        assert response.status_code == 422, response.text
        assert response.json()["problems"][0]["problem"].startswith("Input should be less than or equal to")
    # The largest size a database integer holds is a valid question: no such head.
    response = http.get("/api/transparency/consistency", params={"first": 2**63 - 1, "second": 2**63 - 1})
    assert response.status_code == 404


class RecordingPublisher:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish(self, event: Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass


def test_whole_numbers_are_integers_fractions_are_not(tmp_path: Path) -> None:
    """JSON has one number type: 5000.0 is the integer 5000, as the schema's `integer` says."""
    with recording_client(tmp_path) as (client, published):
        accepted = client.post("/api/projects", json=plan("p1", goal_fen=100_000.0), headers=STAFF)
        assert accepted.status_code == 202
        for goal in (100_000.5, "100000", True):
            refused = client.post("/api/projects", json=plan("p2", goal_fen=goal), headers=STAFF)
            assert refused.status_code == 422 and refused.json()["problems"][0]["field"] == "goal_fen"
    [event] = published.events
    assert isinstance(event, ProjectRegistered) and type(event.goal_fen) is int and event.goal_fen == 100_000


def test_text_is_kept_in_normal_form_c(tmp_path: Path) -> None:
    """An e and a combining acute accent are é: the event gets the composed form events must have."""
    with recording_client(tmp_path) as (client, published):
        response = client.post("/api/projects", json=plan("p1", name="Cafe\u0301 ok"), headers=STAFF)
        assert response.status_code == 202, response.text
    [event] = published.events
    assert isinstance(event, ProjectRegistered) and event.name == "Caf\u00e9 ok"


def test_balances_need_a_date_time_not_a_number(http: TestClient) -> None:
    for as_of in ("0.5", "1700000000", "2026-06-30T23:59:59"):
        response = http.get("/api/projects/open/balances", params={"as_of": as_of})
        assert response.status_code == 422 and response.json()["problems"][0]["field"] == "query.as_of"
    response = http.get("/api/projects/open/balances", params={"as_of": "2026-06-30T23:59:59Z"})
    assert response.status_code == 200


def test_ids_in_paths_have_the_form_of_ids(http: TestClient) -> None:
    """A NUL or a space is nobody's id: refused before PostgreSQL would choke on it."""
    for path in ("/api/projects/a%00b/totals", "/projects/a%20b", "/api/receipts/a%00"):
        response = http.get(path)
        assert response.status_code == 422, (path, response.text)


def test_405_names_every_method_the_path_has(http: TestClient) -> None:
    response = http.delete("/api/projects")
    assert response.status_code == 405 and response.headers["Allow"] == "GET, POST"
    response = http.put("/api/projects/open/totals")
    assert response.status_code == 405 and response.headers["Allow"] == "GET"


@contextmanager
def recording_client(tmp_path: Path) -> Iterator[tuple[TestClient, RecordingPublisher]]:
    url = f"sqlite:///{tmp_path / 'recorded.db'}"
    LedgerStore(make_engine(url)).migrate()
    published = RecordingPublisher()
    settings = Settings(database_url=url, staff_token="s3cret", internal_donations_enabled=True)
    app = create_app(settings, LedgerQueries(make_engine(url, writer=False)), published, {})
    with TestClient(app) as client:
        yield client, published


def plan(project_id: str, **overrides: object) -> dict[str, object]:
    return {**project_body(project_id), **overrides}


def test_a_database_that_is_away_gives_503_with_retry_after_never_500(tmp_path: Path) -> None:
    # Nothing listens there: every read of the ledger fails to connect.
    away = f"postgresql+psycopg://nobody:x@127.0.0.1:{free_ports(1)[0]}/none?connect_timeout=1"
    dead_broker = f"127.0.0.1:{free_ports(1)[0]}"
    app = create_app(
        Settings(
            database_url=away,
            staff_token="s3cret",
            kafka_bootstrap=dead_broker,
            internal_donations_enabled=True,
        ),
        LedgerQueries(make_engine(away, writer=False)),
        KafkaEventPublisher(dead_broker, Topics(""), timeout_s=1.0),
        {},
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        for answer in (
            client.get("/api/projects"),
            client.get("/api/projects/open/totals"),
            client.get("/"),
            client.post("/api/internal/donations/confirmed", json=gift(), headers=STAFF),
        ):
            assert answer.status_code == 503, (answer.request.url, answer.text)
            assert answer.headers["Retry-After"] == "5"
            assert answer.json()["detail"].startswith("the ledger database cannot be reached")
