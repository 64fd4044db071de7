"""The wheel: built from this checkout, installed with its dependencies into a fresh
virtualenv, and run from a directory that is not the checkout.

Slow (a build and a full install, from pip's cache where it can) and it needs
PyPI, so it is an integration test. The first test is quick and guards the
package list in pyproject.toml, which is written out by hand.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALL_TIMEOUT_S = 300

# Run inside the virtualenv: what the installed package finds, as one JSON object.
PROBE = """
import json
from importlib.resources import files

import services
from services.api.web import STATIC_DIR as API_STATIC_DIR, templates as api_templates
from services.payments.sandbox.pay_page import templates as sandbox_templates
from services.contracts.codec import EventCodec
from services.contracts.schema_catalog import default_catalog
from services.display.app import STATIC_DIR, templates as display_templates

catalog = default_catalog()
EventCodec(catalog)  # refuses to start without a schema for every event type
for name in files("services.api").joinpath("templates").iterdir():
    api_templates.get_template(name.name)
for name in files("services.display").joinpath("templates").iterdir():
    display_templates.get_template(name.name)
for name in files("services.payments.sandbox").joinpath("templates").iterdir():
    sandbox_templates.get_template(name.name)
print(json.dumps({
    "package": services.__file__,
    "schemas": sorted(f"{n}.v{v.version}.avsc" for n in catalog.names() for v in catalog.versions(n)),
    "static": sorted(p.name for p in STATIC_DIR.iterdir()),
    "api_static": sorted(p.name for p in API_STATIC_DIR.iterdir()),
}))
"""


@dataclass(frozen=True)
class Installed:
    wheel: Path
    sources: list[str]  # the checkout's files it was built from
    venv: Path
    elsewhere: Path  # the working directory for every command: not the checkout
    env: dict[str, str]

    def run(self, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args,
            cwd=self.elsewhere,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )


def run_ok(args: list[str], env: dict[str, str], cwd: Path) -> None:
    result = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}\n{result.stderr}"


def source_files() -> list[str]:
    """The checkout as it is now: tracked files and new ones that git does not ignore, and what
    `make vendor` fetched (deploy/vendor/), which is product though git ignores it."""
    names = [
        *_git_files("--cached", "--others", "--exclude-standard"),
        *_git_files("--others", "--ignored", "--exclude-standard", "services/api/static/vendor"),
    ]
    return sorted(name for name in names if name and (REPO / name).is_file())


def _git_files(*options: str) -> list[str]:
    listing = subprocess.run(
        ["git", "ls-files", "-z", *options], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    return listing.split("\0")


def clean_env(venv: Path) -> dict[str, str]:
    """This process's environment (pip's settings included) without the checkout's or the ledger's."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not key.startswith("CHARITY_")
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
    return env


def test_every_directory_of_services_is_a_listed_package() -> None:
    packages = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    directories = {
        ".".join(Path(name).parent.parts) for name in source_files() if name.startswith("services/")
    }
    missing = sorted(directories - packages)
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"
    assert packages - directories == {"services.contracts.schemas"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    # Built from a copy: an in-place build would leave build/ in the checkout and
    # could pack stale files from an earlier build into the wheel.
    source, sources = root / "source", source_files()
    for name in sources:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    dist, venv, elsewhere = root / "dist", root / "venv", root / "elsewhere"
    elsewhere.mkdir()
    env = clean_env(venv)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)]
    run_ok(pip_wheel, env=env, cwd=elsewhere)
    (wheel,) = dist.glob("*.whl")
    run_ok([sys.executable, "-m", "venv", str(venv)], env=env, cwd=elsewhere)
    # With its dependencies: the wheel has to run, not just unpack.
    run_ok([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], env=env, cwd=elsewhere)
    return Installed(wheel, sources, venv, elsewhere, env)


@pytest.mark.integration
def test_the_wheel_holds_the_product_and_nothing_else(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
    top = {name.split("/")[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"services"}
    assert not any("bench" in part or part == "tests" for name in names for part in name.split("/"))
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)  # Apache-2.0 asks for it
    product = {name for name in installed.sources if name.startswith("services/")}
    assert product <= names, f"missing from the wheel: {sorted(product - names)}"
    schemas = {f"services/contracts/{name}" for name in installed.sources if name.startswith("schemas/")}
    assert schemas <= names, f"schemas missing from the wheel: {sorted(schemas - names)}"


@pytest.mark.integration
def test_the_installed_command_starts(installed: Installed) -> None:
    result = installed.run("charity-ledger", "--help")
    assert result.returncode == 0, result.stderr
    assert "migrate" in result.stdout


@pytest.mark.integration
def test_the_installed_command_migrates_a_fresh_database(installed: Installed) -> None:
    database = installed.elsewhere / "ledger.db"
    result = installed.run(
        "charity-ledger", "migrate", extra_env={"CHARITY_DATABASE_URL": f"sqlite:///{database}"}
    )
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(database) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"journal", "postings", "alembic_version"} <= tables


@pytest.mark.integration
def test_the_installed_package_reads_its_schemas_templates_and_static_files(installed: Installed) -> None:
    result = installed.run(str(installed.venv / "bin" / "python"), "-c", PROBE)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert Path(found["package"]).is_relative_to(installed.venv), "imported the checkout, not the wheel"
    assert found["schemas"] == sorted(p.name for p in (REPO / "schemas").glob("*.avsc"))
    assert found["static"] == sorted(p.name for p in (REPO / "services/display/static").iterdir())
    assert found["api_static"] == sorted(p.name for p in (REPO / "services/api/static").iterdir())
