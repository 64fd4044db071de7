"""The `charity-ledger` entry point, run as an operator runs it: in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.platform.free_ports import free_ports

ENTRY_POINT = Path(sys.executable).with_name("charity-ledger")
COMMANDS = ["run", "kafka", "ledger", "api", "display", "migrate", "verify", "rebuild"]
KAFKA_COMMANDS = ["start", "stop", "status", "format", "topics"]
PORTS = ("CHARITY_API_PORT", "CHARITY_LEDGER_HTTP_PORT", "CHARITY_DISPLAY_PORT")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """No CHARITY_* from the caller; everything the product might write goes under tmp_path."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHARITY_")}
    bootstrap_port, kafka_port, *service_ports = free_ports(2 + len(PORTS))
    return {
        **clean,
        "CHARITY_VAR_DIR": str(tmp_path / "var"),
        "CHARITY_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "CHARITY_SIGNING_KEY": str(tmp_path / "keys" / "absent.pem"),
        "CHARITY_KAFKA_BOOTSTRAP": f"127.0.0.1:{bootstrap_port}",
        "CHARITY_KAFKA_PORT": str(kafka_port),
        **{name: str(port) for name, port in zip(PORTS, service_ports, strict=True)},
    }


def charity_ledger(*args: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENTRY_POINT), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_entry_point_is_installed() -> None:
    assert ENTRY_POINT.exists(), "pip install -e . puts charity-ledger beside the venv's python"


def test_help_lists_every_command_and_no_bench(env: dict[str, str]) -> None:
    for args in (["--help"], []):
        result = charity_ledger(*args, env=env)
        assert result.returncode == 0, result.stderr
        listed = {line.strip("│ ").split(" ")[0] for line in result.stdout.splitlines()}
        assert set(COMMANDS) <= listed
        assert "bench" not in listed


@pytest.mark.parametrize("command", [*COMMANDS, *(f"kafka {c}" for c in KAFKA_COMMANDS)])
def test_help_of_a_command_starts_nothing(command: str, env: dict[str, str], tmp_path: Path) -> None:
    started = time.monotonic()
    # A session of its own: every process the command might leave behind is in its group.
    child = subprocess.Popen(
        [str(ENTRY_POINT), *command.split(), "--help"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    out, err = child.communicate(timeout=15)
    assert child.returncode == 0, err
    assert time.monotonic() - started < 10
    assert f"Usage: charity-ledger {command} " in out
    with pytest.raises(ProcessLookupError):
        os.killpg(child.pid, 0)
    assert not any(listening(int(env[name])) for name in PORTS)
    assert not (tmp_path / "ledger.db").exists() and not (tmp_path / "var").exists()


def test_kafka_help_lists_its_commands(env: dict[str, str]) -> None:
    result = charity_ledger("kafka", "--help", env=env)
    assert result.returncode == 0, result.stderr
    listed = {line.strip("│ ").split(" ")[0] for line in result.stdout.splitlines()}
    assert set(KAFKA_COMMANDS) <= listed
    assert "--data-dir" in result.stdout and "--port" in result.stdout


def test_help_loads_no_service(env: dict[str, str]) -> None:
    script = (
        "import sys\n"
        "from services.cli import main\n"
        "try:\n"
        "    main(['ledger', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('sqlalchemy', 'kafka', 'confluent_kafka', 'fastapi', 'uvicorn', 'services.ledger')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["nosuchcommand"], "No such command 'nosuchcommand'"),
        (["run", "--bogus"], "No such option: --bogus"),
        (["ledger", "extra"], "unexpected extra argument"),
        (["kafka", "nosuchcommand"], "No such command 'nosuchcommand'"),
        (["kafka"], "Usage: charity-ledger kafka"),
        (["verify", "--database-url"], "requires an argument"),
    ],
)
def test_bad_usage_exits_2_with_a_message(args: list[str], complaint: str, env: dict[str, str]) -> None:
    result = charity_ledger(*args, env=env)
    assert result.returncode == 2
    assert complaint in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_a_bad_setting_is_named_and_exits_2(env: dict[str, str], tmp_path: Path) -> None:
    result = charity_ledger("migrate", env={**env, "CHARITY_API_PORT": "abc"})
    assert result.returncode == 2
    assert "CHARITY_API_PORT='abc'" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) <= 3
    assert not (tmp_path / "ledger.db").exists()


def test_python_dash_m_runs_the_same_command(env: dict[str, str]) -> None:
    """The supervisor, the crash test and the benchmarks start services this way."""
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "ledger", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage: charity-ledger ledger " in result.stdout


def test_migrate_then_verify_and_rebuild_with_their_options(env: dict[str, str], tmp_path: Path) -> None:
    assert charity_ledger("migrate", env=env).returncode == 0
    assert (tmp_path / "ledger.db").exists()

    refused = charity_ledger("verify", "--quiet", env=env)
    assert refused.returncode == 2 and "--public-key" in refused.stderr

    other = tmp_path / "other.db"
    assert (
        charity_ledger("migrate", env={**env, "CHARITY_DATABASE_URL": f"sqlite:///{other}"}).returncode == 0
    )
    checked = charity_ledger("rebuild", "--check", "--database-url", f"sqlite:///{other}", env=env)
    assert checked.returncode == 0, checked.stderr
    assert "rebuilt 0 projects" in checked.stdout and "replaced" not in checked.stdout


def test_kafka_status_of_a_broker_never_started_exits_1(env: dict[str, str], tmp_path: Path) -> None:
    result = charity_ledger("kafka", "--data-dir", str(tmp_path / "kafka"), "status", env=env)
    assert result.returncode == 1
    assert result.stdout.startswith(f"kafka stopped at 127.0.0.1:{env['CHARITY_KAFKA_PORT']} ")
