"""`charity-ledger verify` and `charity-ledger rebuild`: operator commands on the ledger DB."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.ledger.adapters.db import make_engine
from services.ledger.adapters.signing import load_or_create_signing_key, load_public_key_pem
from services.ledger.ops.rebuild import compare_with_live, replace_live, replay
from services.ledger.ops.verify import verify
from services.platform.settings import Settings


class ProgressBar:
    def __init__(self, label: str) -> None:
        self.label = label
        self.started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        rate = done / max(time.monotonic() - self.started, 1e-9)
        sys.stderr.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} ({rate:,.0f}/s)"
        )
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"charity-ledger {prog}", description=description)
    parser.add_argument("--database-url", default=None, help="default: CHARITY_DATABASE_URL or var/ledger.db")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def verify_command(argv: list[str]) -> int:
    parser = _parser("verify", "re-check the hash chain, tree heads, balances and projections")
    parser.add_argument(
        "--public-key", type=Path, help="PEM of the tree-head key (default: from the local signing key)"
    )
    args = parser.parse_args(argv)
    settings = Settings()
    engine = make_engine(args.database_url or settings.database_url, writer=False)
    public_key: Ed25519PublicKey
    key_path = Path(settings.signing_key_path)
    if args.public_key:
        public_key = load_public_key_pem(args.public_key.read_text())
    elif key_path.exists():
        public_key = load_or_create_signing_key(key_path).public_key()
    else:
        # A fresh key would make every published signature look forged.
        print(
            f"no tree-head signing key at {key_path}; pass --public-key with the published key "
            "(GET /api/transparency/public-key)",
            file=sys.stderr,
        )
        return 2
    started = time.monotonic()
    report = verify(engine, public_key, None if args.quiet else ProgressBar("verify"))
    seconds = time.monotonic() - started
    if not report.ok:
        print(f"FAILED: {report.problems[0]}")
        for extra in report.problems[1:]:
            print(f"        {extra}")
        return 1
    print(
        f"OK: {report.entries} entries chained and balanced, {report.tree_heads} signed tree heads match, "
        f"projections equal a rebuild ({seconds:.1f}s)"
    )
    return 0


def rebuild_command(argv: list[str]) -> int:
    parser = _parser("rebuild", "recompute every projection from the journal")
    parser.add_argument("--check", action="store_true", help="only compare with the live projections")
    args = parser.parse_args(argv)
    engine = make_engine(args.database_url or Settings().database_url)
    started = time.monotonic()
    rebuilt = replay(engine, None if args.quiet else ProgressBar("rebuild"))
    comparison = compare_with_live(engine, rebuilt)
    seconds = time.monotonic() - started
    if comparison.equal:
        print(f"rebuilt {len(rebuilt.projects)} projects in {seconds:.1f}s: equal to the live projections")
    else:
        print(f"rebuilt projections differ from the live ones in {len(comparison.differences)} places:")
        for line in comparison.differences[:20]:
            print(f"  {line}")
    if args.check:
        return 0 if comparison.equal else 1
    replace_live(engine, rebuilt)
    print("live projections replaced by the rebuild")
    return 0
