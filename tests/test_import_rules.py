"""The package layout's rules, checked on every module's imports (docs/architecture.md, "Packages").

Arrows point down: cli → api, ledger, display → contracts, platform. The ledger's
domain and service layer import no adapter; the API reads the ledger only through
its read side; nothing in the product imports the benchmarks or the tests.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / "services"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, as absolute dotted names (also imports inside functions)."""
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                prefix = ".".join(base)
                found.add(f"{prefix}.{node.module}" if node.module else prefix)
            elif node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def product_modules() -> dict[str, set[str]]:
    return {
        module_name(p): imports_of(p)
        for p in sorted(SERVICES.rglob("*.py"))
        if "migrations" not in p.parts or p.name == "env.py"
    }


MODULES = product_modules()


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(importer: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in MODULES.items()
        if _within(module, importer)
        for target in targets
        if any(_within(target, f) for f in forbidden) and not any(_within(target, a) for a in allowed)
    )


INFRASTRUCTURE = ("kafka", "confluent_kafka", "sqlalchemy", "alembic", "fastapi", "starlette", "uvicorn")


def test_the_rules_see_every_product_module() -> None:
    assert "services.ledger.service.processor" in MODULES
    assert "services.ledger.adapters.store" in MODULES["services.ledger.main"]


def test_the_product_imports_no_benchmark_and_no_test() -> None:
    assert violations("services", ("bench", "tests")) == []


def test_no_benchmark_code_under_services() -> None:
    assert [p for p in SERVICES.rglob("*bench*")] == []


def test_the_donors_rules_know_nothing_of_kafka_sql_or_http() -> None:
    assert (
        violations("services.donors.domain", (*INFRASTRUCTURE, "services"), ("services.donors.domain",)) == []
    )


def test_the_domain_knows_nothing_of_kafka_sql_or_http() -> None:
    """It may use the event types (contracts), nothing else of the project."""
    allowed = ("services.ledger.domain", "services.contracts.events")
    assert violations("services.ledger.domain", (*INFRASTRUCTURE, "services"), allowed) == []


def test_the_service_layer_imports_no_adapter() -> None:
    forbidden = (
        *INFRASTRUCTURE,
        "services.ledger.adapters",
        "services.ledger.ops",
        "services.ledger.read",
        "services.ledger.main",
        "services.platform.rdkafka_output",
        "services.platform.kafka_io",
    )
    assert violations("services.ledger.service", forbidden) == []


def test_the_api_reads_the_ledger_only_through_its_read_side() -> None:
    assert violations("services.api", ("services.ledger",), ("services.ledger.read",)) == []
    deep = [
        f"{module} imports {target}"
        for module, targets in MODULES.items()
        if _within(module, "services.api")
        for target in targets
        if _within(target, "services.ledger.read") and target.count(".") > 3
    ]
    assert deep == [], "import the read side's package, not its modules"


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("services.contracts", ("services.api", "services.ledger", "services.display", "services.platform")),
        ("services.platform", ("services.api", "services.ledger", "services.display", "services.cli")),
        ("services.display", ("services.api", "services.ledger", "services.cli")),
        (
            "services.ledger",
            ("services.api", "services.display", "services.cli", "services.donors", "services.payments"),
        ),
        ("services.api", ("services.display", "services.cli")),
        (
            "services.donors",
            ("services.api", "services.ledger", "services.display", "services.payments", "services.cli"),
        ),
        (
            "services.payments",
            ("services.api", "services.ledger", "services.display", "services.donors", "services.cli"),
        ),
        ("services.display", ("services.donors", "services.payments")),
        ("services.verifier", ("services",)),
    ],
)
def test_arrows_point_down(package: str, forbidden: tuple[str, ...]) -> None:
    assert violations(package, forbidden) == []
