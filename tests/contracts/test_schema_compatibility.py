"""Schema evolution: each version must be backward AND forward compatible with its predecessor."""

import json
from pathlib import Path

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from services.contracts.schema_catalog import SchemaCatalog, schema_files

catalog = SchemaCatalog.load()
PAIRS = [
    (older, newer)
    for name in catalog.names()
    for older, newer in zip(catalog.versions(name), catalog.versions(name)[1:], strict=False)
]


def _compatible(reader: dict[str, object], writer: dict[str, object]) -> bool:
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        avro.schema.parse(json.dumps(reader)), avro.schema.parse(json.dumps(writer))
    )
    return bool(result.compatibility is SchemaCompatibilityType.compatible)


def test_there_is_at_least_one_evolved_schema_to_check() -> None:
    assert PAIRS, "no schema has a second version: the compatibility check would check nothing"


@pytest.mark.parametrize(
    ("older", "newer"), PAIRS, ids=[f"{o.name}.v{o.version}->v{n.version}" for o, n in PAIRS]
)
def test_new_readers_read_old_data_and_old_readers_read_new_data(older, newer) -> None:  # type: ignore[no-untyped-def]
    assert _compatible(newer.raw, older.raw), "backward: the new schema cannot read old records"
    assert _compatible(older.raw, newer.raw), "forward: the old schema cannot read new records"


def test_the_checker_does_catch_an_incompatible_change() -> None:
    old = catalog.latest("DonationConfirmed").raw
    broken = json.loads(json.dumps(old))
    broken["fields"].append({"name": "required_new", "type": "string"})  # no default
    assert not _compatible(broken, old)


def test_fingerprints_are_pinned() -> None:
    golden = json.loads((schema_files() / "fingerprints.json").read_text(encoding="utf-8"))
    actual = {f"{n}.v{v.version}": v.fingerprint.hex() for n in catalog.names() for v in catalog.versions(n)}
    assert actual == golden, "a schema file changed: add a new version instead of editing a published one"


def test_versions_are_numbered_without_gaps() -> None:
    for name in catalog.names():
        assert [v.version for v in catalog.versions(name)] == list(range(1, len(catalog.versions(name)) + 1))


def test_the_catalogue_is_the_top_level_schemas_directory() -> None:
    # pyproject.toml builds services.contracts.schemas from schemas/; an editable
    # install must read those very files, not a copy that could drift.
    top_level = Path(__file__).resolve().parents[2] / "schemas"
    assert Path(str(schema_files())).resolve() == top_level
    files = sorted(p.name for p in top_level.glob("*.avsc"))
    assert files == sorted(f"{n}.v{v.version}.avsc" for n in catalog.names() for v in catalog.versions(n))
