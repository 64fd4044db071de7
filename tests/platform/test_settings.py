"""Settings from CHARITY_* variables: defaults, prefix, keyword arguments, errors naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.platform.settings import VAR_DIR, Settings, describe_error


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith("CHARITY_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = Settings()
    assert settings.database_url == f"sqlite:///{VAR_DIR / 'ledger.db'}"
    assert settings.kafka_bootstrap == "127.0.0.1:9092" and settings.kafka_port == 9092
    assert (settings.api_port, settings.ledger_http_port, settings.display_port) == (8000, 8001, 8002)
    assert settings.staff_token == "" and settings.topic_prefix == ""
    assert settings.signing_key_path == str(VAR_DIR / "keys" / "tree-head-ed25519.pem")
    assert settings.tree_head_interval_s == 2.0 and isinstance(settings.tree_head_interval_s, float)


def test_variables_with_the_prefix_are_read_and_converted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARITY_API_PORT", "9100")
    monkeypatch.setenv("CHARITY_TREE_HEAD_INTERVAL_S", "0.5")
    monkeypatch.setenv("CHARITY_SIGNING_KEY", "/keys/head.pem")
    monkeypatch.setenv("CHARITY_KAFKA_PORT", "29092")
    monkeypatch.setenv("API_HOST", "0.0.0.0")  # no prefix: not ours
    monkeypatch.setenv("CHARITY_SIGNING_KEY_PATH", "/not/this.pem")  # the field's name is not a variable
    settings = Settings()
    assert settings.api_port == 9100
    assert settings.tree_head_interval_s == 0.5
    assert settings.signing_key_path == "/keys/head.pem"
    assert settings.kafka_port == 29092
    assert settings.api_host == "127.0.0.1"


def test_keyword_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARITY_DATABASE_URL", "sqlite:///from-env.db")
    monkeypatch.setenv("CHARITY_STAFF_TOKEN", "env-token")
    monkeypatch.setenv("CHARITY_SIGNING_KEY", "/env.pem")
    settings = Settings(database_url="sqlite:///given.db", staff_token="given", signing_key_path="/given.pem")
    assert settings.database_url == "sqlite:///given.db"
    assert settings.staff_token == "given"
    assert settings.signing_key_path == "/given.pem"


def test_frozen_and_strict_about_names() -> None:
    settings = Settings(staff_token="s3cret")
    with pytest.raises(ValidationError):
        settings.api_port = 1
    with pytest.raises(ValidationError, match="no_such_setting"):
        Settings(no_such_setting=1)  # type: ignore[call-arg]
    assert "s3cret" not in repr(settings)


def test_a_bad_variable_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARITY_API_PORT", "abc")
    monkeypatch.setenv("CHARITY_SIGNING_KEY", "/fine.pem")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert "CHARITY_API_PORT" in str(caught.value)
    described = describe_error(caught.value)
    assert "CHARITY_API_PORT='abc': Input should be a valid integer" in described
    assert len(described.splitlines()) == 2


def test_a_bad_keyword_argument_is_named_by_its_field() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(display_port="eighty")  # type: ignore[arg-type]
    assert "display_port='eighty'" in describe_error(caught.value)


def test_var_dir_comes_from_charity_var_dir(tmp_path: Path) -> None:
    script = (
        "from services.platform.settings import VAR_DIR, Settings\n"
        "print(VAR_DIR)\n"
        "print(Settings().database_url)\n"
    )
    env = {**os.environ, "CHARITY_VAR_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == [str(tmp_path), f"sqlite:///{tmp_path / 'ledger.db'}"]
