"""Every version of every event schema in schemas/, indexed by fingerprint.

The .avsc files live in the repository's top-level schemas/ directory, which
pyproject.toml builds into the package ``services.contracts.schemas``: they are
package data, read through importlib.resources, so a checkout (editable
install) and an installed wheel find the same files.

No schema registry is needed: a writer schema is identified by the CRC-64-AVRO
fingerprint of its Parsing Canonical Form, which single-object encoding puts in
front of every record, and all versions ship with the code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

SCHEMA_PACKAGE = "services.contracts.schemas"
_FILE_NAME = re.compile(r"^(?P<name>[A-Za-z]+)\.v(?P<version>\d+)\.avsc$")


@dataclass(frozen=True)
class SchemaVersion:
    name: str
    version: int
    raw: dict[str, Any]
    parsed: Any
    fingerprint: bytes  # 8 bytes, little-endian as in single-object encoding

    @property
    def canonical_form(self) -> str:
        return str(to_parsing_canonical_form(self.raw))


class SchemaCatalog:
    def __init__(self, versions: list[SchemaVersion]) -> None:
        self._by_fingerprint = {v.fingerprint: v for v in versions}
        self._versions: dict[str, list[SchemaVersion]] = {}
        for v in sorted(versions, key=lambda v: (v.name, v.version)):
            self._versions.setdefault(v.name, []).append(v)

    @classmethod
    def load(cls, directory: Traversable | None = None) -> SchemaCatalog:
        directory = schema_files() if directory is None else directory
        versions = []
        for path in sorted(directory.iterdir(), key=lambda entry: entry.name):
            if not path.name.endswith(".avsc"):
                continue
            match = _FILE_NAME.match(path.name)
            if match is None:
                raise ValueError(f"schema file {path.name} is not named <Event>.v<N>.avsc")
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("name") != match["name"]:
                raise ValueError(f"{path.name} declares record {raw.get('name')!r}")
            canonical = to_parsing_canonical_form(raw)
            versions.append(
                SchemaVersion(
                    name=match["name"],
                    version=int(match["version"]),
                    raw=raw,
                    parsed=parse_schema(raw),
                    fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
                )
            )
        return cls(versions)

    def names(self) -> list[str]:
        return list(self._versions)

    def versions(self, name: str) -> list[SchemaVersion]:
        return list(self._versions[name])

    def latest(self, name: str) -> SchemaVersion:
        return self._versions[name][-1]

    def by_fingerprint(self, fp: bytes) -> SchemaVersion | None:
        return self._by_fingerprint.get(fp)


def schema_files() -> Traversable:
    """The schemas/ directory as installed with the code."""
    return files(SCHEMA_PACKAGE)


@cache
def default_catalog() -> SchemaCatalog:
    return SchemaCatalog.load()
