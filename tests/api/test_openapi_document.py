"""What the OpenAPI document states, read without a server: the error schema, the bounds, the enums.

test_openapi_contract.py checks the running API against the document; these
tests keep the document from quietly losing what that check relies on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from services.api.app import create_app
from services.api.models import ProjectIn
from services.contracts.events import Event
from services.contracts.validation import ANONYMITY_MODES, CHANNELS, CURRENCIES, problems_with
from services.ledger.read.queries import LedgerQueries
from services.platform.db import make_engine
from services.platform.settings import Settings
from tests.api.test_end_to_end import project_body
from tests.fixtures import factories as f

ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}


class Unused:
    """The document is read, nothing published."""

    async def publish(self, event: Event) -> None:
        raise AssertionError("nothing is published here")

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    url = f"sqlite:///{tmp_path_factory.mktemp('doc') / 'ledger.db'}"
    app = create_app(
        Settings(database_url=url, internal_donations_enabled=True),
        LedgerQueries(make_engine(url, writer=False)),
        Unused(),
        {},
    )
    return app.openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method.upper(), operation


def test_every_error_answer_is_declared_with_the_error_body(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, method, operation in operations(document):
        for code, response in operation["responses"].items():
            if not code.startswith(("4", "5")) or (path, code) == ("/readyz", "503"):
                continue  # /readyz answers 503 with its own report of what is failing
            content = dict(response["content"])
            if "pages" in operation.get("tags", []):
                content.pop("text/html", None)  # a page's own refusals are pages (a form shown again)
            assert content == {"application/json": {"schema": ERROR_BODY}}, (path, method, code)
            if code == "503":
                assert response["headers"]["Retry-After"]["required"], (path, method)
    error_body = document["components"]["schemas"]["ErrorBody"]
    assert set(error_body["required"]) == {"detail", "problems"}


@pytest.mark.parametrize(
    ("path", "method", "codes"),
    [
        ("/api/projects", "POST", {"202", "400", "401", "403", "409", "422", "503"}),
        ("/api/projects/{project_id}/approve", "POST", {"202", "401", "403", "404", "422", "503"}),
        (
            "/api/internal/donations/confirmed",
            "POST",
            {"202", "400", "401", "403", "404", "409", "422", "503"},
        ),
        # Every route that reads the ledger database answers 503 while it cannot be reached.
        ("/api/transparency/consistency", "GET", {"200", "404", "422", "503"}),
        ("/api/receipts/{entry_id}", "GET", {"200", "404", "409", "422", "503"}),
        ("/api/transparency/public-key", "GET", {"200", "503"}),
        ("/api/transparency/public-keys", "GET", {"200", "503"}),
        ("/api/projects", "GET", {"200", "503"}),
        ("/", "GET", {"200", "503"}),
    ],
)
def test_each_route_declares_the_codes_it_answers(
    document: dict[str, Any], path: str, method: str, codes: set[str]
) -> None:
    assert set(document["paths"][path][method.lower()]["responses"]) == codes


def integer_schemas(node: object, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("type") == "integer":
            yield where, node
        for key, value in node.items():
            yield from integer_schemas(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from integer_schemas(value, f"{where}/{index}")


def test_every_integer_has_both_bounds(document: dict[str, Any]) -> None:
    found = list(integer_schemas(document))
    assert len(found) >= 8  # the amounts, cost_cap_bp, limit, first, second
    for where, schema in found:
        assert "minimum" in schema or "exclusiveMinimum" in schema, where
        assert schema.get("maximum", 2**63) <= 2**63 - 1, where


def test_codes_are_enums_of_what_the_ledger_accepts(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    donation = schemas["ConfirmedDonationIn"]["properties"]
    assert donation["currency"]["enum"] == sorted(CURRENCIES)
    assert donation["channel"]["enum"] == sorted(CHANNELS)
    assert donation["anonymity"]["enum"] == sorted(ANONYMITY_MODES)
    assert schemas["ProjectIn"]["properties"]["currency"]["enum"] == sorted(CURRENCIES)


def test_metrics_are_declared_as_text(document: dict[str, Any]) -> None:
    assert set(document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}


def test_the_model_refuses_exactly_the_characters_the_event_rules_refuse() -> None:
    """The schema's pattern and the model's check are written apart from validation.py's rule."""
    base = project_body("p")
    for code in [*range(0x00, 0x250), *range(0x2000, 0x2070), 0xFEFF]:
        char = chr(code)
        for field in ("organisation", "purpose"):  # one line, and multi-line
            text = f"a{char}b"
            event_refuses = any(
                "control or formatting" in p for p in problems_with(f.registered("p", **{field: text}))
            )
            try:
                ProjectIn(**{**base, field: text})
                model_refuses = False
            except ValueError:
                model_refuses = True
            assert model_refuses == event_refuses, (field, hex(code))
