"""`make run` stops as one on Ctrl-C, also when its output went through a pipe that died.

The case from the issue: `make run 2>&1 | tee run.log`, then Ctrl-C. The terminal sends
SIGINT to the whole foreground process group, tee included, and tee is usually gone
before the supervisor's first word about stopping; that print used to raise
BrokenPipeError and skip the stop sequence, leaving the broker (in a session of its own)
running. The test makes that order certain: tee first, then the whole group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from services.platform.free_ports import free_ports
from services.platform.settings import Settings
from services.platform.supervisor import kafka_ports

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent
UP_LINE = "Ctrl-C stops everything."


def test_kafka_ports_default_to_9092_and_the_next_one_and_can_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHARITY_KAFKA_PORT", raising=False)
    monkeypatch.delenv("CHARITY_KAFKA_CONTROLLER_PORT", raising=False)
    assert kafka_ports(Settings()) == (9092, 9093)
    monkeypatch.setenv("CHARITY_KAFKA_PORT", "19092")
    assert kafka_ports(Settings()) == (19092, 19093)
    monkeypatch.setenv("CHARITY_KAFKA_CONTROLLER_PORT", "20000")
    assert kafka_ports(Settings()) == (19092, 20000)


# --- processes, from /proc ---------------------------------------------------------------


def _stat(pid: int) -> tuple[str, str, int] | None:
    """(command name, state letter, session id), or None if the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces or ')'.
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return name, fields[0], int(fields[3])


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _in_session(sid: int) -> dict[int, str]:
    found = {}
    for pid in _pids():
        stat = _stat(pid)
        if stat is not None and stat[2] == sid:
            found[pid] = stat[0]
    return found


def _with_environment(marker: bytes) -> dict[int, str]:
    """Processes whose environment holds `marker`: every process of the run, whatever its session
    (the broker runs in a session of its own)."""
    found = {}
    for pid in _pids():
        with contextlib.suppress(OSError):
            if marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") and _alive(pid):
                found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return found


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[1] not in ("Z", "X")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_for(condition: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what()}")
        time.sleep(0.1)


def _api_ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


# --- the run -----------------------------------------------------------------------------


@pytest.mark.integration
def test_ctrl_c_stops_make_run_when_the_pipe_reader_died_first(tmp_path: Path) -> None:
    if not (BIN_DIR / "charity-ledger").exists():
        pytest.fail(f"no charity-ledger next to {sys.executable}: install the package (make install)")
    var_dir = tmp_path / "var"
    log = tmp_path / "run.log"
    api_port, ledger_port, display_port, kafka_port, controller_port = ports = free_ports(5)
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHARITY_")}
    env.update(
        CHARITY_VAR_DIR=str(var_dir),
        CHARITY_API_PORT=str(api_port),
        CHARITY_LEDGER_HTTP_PORT=str(ledger_port),
        CHARITY_DISPLAY_PORT=str(display_port),
        CHARITY_KAFKA_PORT=str(kafka_port),
        CHARITY_KAFKA_CONTROLLER_PORT=str(controller_port),
    )
    marker = f"CHARITY_VAR_DIR={var_dir}".encode()
    # What a new user types, in a session of its own as a terminal's job would be. `-o`
    # keeps make from reinstalling the shared venv or fetching jars on account of a newer
    # pyproject.toml; BIN names this interpreter's venv.
    command = (
        'make --no-print-directory -o .venv/.installed -o var/kafka-libs/.fetched BIN="$1" run 2>&1'
        ' | tee "$2"'
    )
    shell = subprocess.Popen(
        ["bash", "-c", command, "bash", str(BIN_DIR), str(log)],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    sid = shell.pid

    def output() -> str:
        return log.read_text(errors="replace") if log.exists() else ""

    def up() -> bool:
        if shell.poll() is not None:
            pytest.fail(f"make run exited with {shell.returncode}:\n{output()}")
        return UP_LINE in output() and _api_ready(api_port)

    try:
        _wait_for(up, 180, lambda: f"make run to be up; its output:\n{output()}")
        running = _in_session(sid)
        assert "make" in running.values() and "tee" in running.values(), running
        assert _listening(kafka_port) and _listening(display_port) and _listening(ledger_port)

        tee = next(pid for pid, name in running.items() if name == "tee")
        os.kill(tee, signal.SIGINT)
        _wait_for(lambda: not _alive(tee), 10, lambda: "tee to die")
        os.killpg(sid, signal.SIGINT)  # Ctrl-C: the whole foreground group

        shell.wait(timeout=120)
        _wait_for(lambda: not _in_session(sid), 60, lambda: f"the session to end: {_in_session(sid)}")
        _wait_for(
            lambda: not _with_environment(marker), 60, lambda: f"the run to end: {_with_environment(marker)}"
        )
        assert [port for port in ports if _listening(port)] == []
        assert not (var_dir / "kafka" / "kafka.pid").exists()
    finally:
        # A failed run must not leave its processes behind (ours only: by session and marker).
        for pid in set(_in_session(sid)) | set(_with_environment(marker)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            shell.wait(timeout=10)
