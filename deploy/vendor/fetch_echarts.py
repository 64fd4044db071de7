"""Vendor Apache ECharts for the audit charts: `make vendor` (or `python3 deploy/vendor/fetch_echarts.py`).

Downloads the pinned version's tarball from the npm registry, refuses it unless its
SHA-512 is the registry's integrity pinned here, and extracts dist/echarts.min.js with
the licence and notice into services/api/static/vendor/ (git-ignored), which the API
serves as /static/vendor/. Standard library only, no npm: it runs before the virtualenv
exists. Nothing is written unless the whole download checks out.

To move to another version: `npm view echarts@<version> dist.integrity` (or the registry's
https://registry.npmjs.org/echarts/<version>, field dist.integrity) gives the new pin.
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

VERSION = "6.1.0"
INTEGRITY = "sha512-q0yaFPggC9FUdsWH4blavRWFmxdrIodbkoKNAjJudAI6CA9gNPxHtV2RcZNEepZVlk4yvBYkOkbk6HIVpIyHZA=="
TARBALL = f"https://registry.npmjs.org/echarts/-/echarts-{VERSION}.tgz"
TARGET = Path(__file__).resolve().parents[2] / "services" / "api" / "static" / "vendor"
# Member of the tarball → file served; the licence and notice go with the code (Apache-2.0).
FILES = {
    "package/dist/echarts.min.js": "echarts.min.js",
    "package/LICENSE": "echarts-LICENSE.txt",
    "package/NOTICE": "echarts-NOTICE.txt",
}


def checked(data: bytes, integrity: str = INTEGRITY) -> bytes:
    """The tarball if its SHA-512 is the pinned integrity; ValueError otherwise."""
    algorithm, _, expected = integrity.partition("-")
    actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if actual != expected:
        raise ValueError(f"{TARBALL}: {algorithm} is {actual}, not the pinned {expected}")
    return data


def extract(tarball: bytes, target: Path) -> None:
    """The wanted members, each written whole (a temporary name, then renamed)."""
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for member, name in FILES.items():
            found = archive.extractfile(member)
            if found is None:
                raise ValueError(f"{TARBALL} has no {member}")
            partial = target / f".{name}.partial"
            partial.write_bytes(found.read())
            partial.replace(target / name)
    # The version served, for whoever wonders which one it is.
    (target / "echarts-VERSION.txt").write_text(f"echarts {VERSION} from {TARBALL}\n")


def main() -> int:
    print(f"fetching Apache ECharts {VERSION} from the npm registry into {TARGET}")
    with urllib.request.urlopen(TARBALL, timeout=120) as answer:
        data = answer.read()
    try:
        extract(checked(data), TARGET)
    except ValueError as refused:
        print(f"refused: {refused}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
