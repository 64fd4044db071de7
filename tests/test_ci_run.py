""".ci/run installs what a fresh Debian machine lacks: every program `make test` calls beyond
the Python packages and Debian's essential set is checked for there (`command -v`) and, when
missing, installed with apt-get."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CI_RUN = REPO / ".ci" / "run"
FETCH_SCHEMAS = REPO / "deploy" / "kubernetes" / "validation" / "fetch.sh"


def checked_by_ci_run() -> set[str]:
    """The programs .ci/run looks for before it installs what is missing."""
    return set(re.findall(r"command -v (\S+) >/dev/null", CI_RUN.read_text(encoding="utf-8")))


def test_the_deployment_schemas_fetch_has_what_it_calls() -> None:
    # make test runs deploy/kubernetes/validation/fetch.sh first (var/deploy-schemas): a
    # minimal Debian has neither curl nor unzip, and without them make test stops there.
    script = FETCH_SCHEMAS.read_text(encoding="utf-8")
    called = {tool for tool in ("curl", "unzip", "mvn") if re.search(rf"^\s*{tool} ", script, re.MULTILINE)}
    assert called == {"curl", "unzip", "mvn"}
    assert called <= checked_by_ci_run()


def test_the_monitoring_and_java_tools_are_installed() -> None:
    # promtool and prometheus (tests/monitoring), java and javac (the broker, StrimziCheck.java).
    assert {"promtool", "prometheus", "java", "javac", "pg_ctlcluster"} <= checked_by_ci_run()


def test_make_and_pythons_venv_are_installed() -> None:
    # .ci/run ends in `make test`, whose first step is `python3 -m venv`: a minimal Debian has
    # no make, and Debian's python3 has no venv (ensurepip) without python3-venv.
    text = CI_RUN.read_text(encoding="utf-8")
    assert "make" in checked_by_ci_run()
    assert re.search(r"python3 -c .import ensurepip, venv. .*\|\| need_apt\+=\(python3-venv\)", text)
