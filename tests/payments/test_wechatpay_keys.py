from __future__ import annotations

import stat
from pathlib import Path

import pytest

from services.payments.wechatpay_keys import (
    KeyFileInvalid,
    KeyFileMissing,
    PlatformKeyDirectory,
    ensure_local_keys,
    load_api_v3_key,
    load_merchant_key,
    new_platform_key,
    sandbox_keys_dir,
    write_new_file,
)
from services.platform.settings import Settings


def local_settings(root: Path) -> Settings:
    keys = root / "keys"
    return Settings(
        wechatpay_api_v3_key_path=str(keys / "apiv3.key"),
        wechatpay_merchant_key_path=str(keys / "merchant.pem"),
        wechatpay_platform_keys_dir=str(keys / "platform"),
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_local_keys_are_made_where_absent(tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    ensure_local_keys(settings)

    api_v3_key = load_api_v3_key(settings)
    assert len(api_v3_key) == 32 and api_v3_key.decode().isalnum()
    assert mode(Path(settings.wechatpay_api_v3_key_path)) == 0o600
    assert load_merchant_key(settings).key_size == 2048
    assert mode(Path(settings.wechatpay_merchant_key_path)) == 0o600

    (private,) = sandbox_keys_dir(settings).glob("*.pem")
    assert mode(private) == 0o600
    assert sandbox_keys_dir(settings) != Path(settings.wechatpay_platform_keys_dir)
    platform = PlatformKeyDirectory.from_settings(settings)
    assert platform.serials() == [private.stem]
    assert len(private.stem) == 40


def test_existing_keys_are_left_as_they_are(tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    ensure_local_keys(settings)
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    before = {p: p.read_bytes() for p in files}
    ensure_local_keys(settings)
    assert {p: p.read_bytes() for p in sorted(p for p in tmp_path.rglob("*") if p.is_file())} == before


def test_a_deleted_public_key_is_written_again_from_the_sandbox_key(tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    ensure_local_keys(settings)
    (public,) = Path(settings.wechatpay_platform_keys_dir).glob("*.pem")
    original = public.read_bytes()
    public.unlink()
    ensure_local_keys(settings)
    assert public.read_bytes() == original


@pytest.mark.parametrize(
    ("load", "setting"),
    [
        (load_api_v3_key, "wechatpay_api_v3_key_path"),
        (load_merchant_key, "wechatpay_merchant_key_path"),
        (PlatformKeyDirectory.from_settings, "wechatpay_platform_keys_dir"),
    ],
)
def test_a_missing_key_file_names_its_setting(tmp_path: Path, load: object, setting: str) -> None:
    assert callable(load)
    with pytest.raises(KeyFileMissing, match=setting):
        load(local_settings(tmp_path))


def test_an_api_v3_key_of_the_wrong_length_names_its_setting(tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    write_new_file(Path(settings.wechatpay_api_v3_key_path), b"too short\n", 0o600)
    with pytest.raises(KeyFileInvalid, match="wechatpay_api_v3_key_path"):
        load_api_v3_key(settings)


def test_a_merchant_key_that_is_not_a_key_names_its_setting(tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    write_new_file(Path(settings.wechatpay_merchant_key_path), b"-----BEGIN NOTHING-----\n", 0o600)
    with pytest.raises(KeyFileInvalid, match="wechatpay_merchant_key_path"):
        load_merchant_key(settings)


def test_a_platform_key_added_later_is_found_by_its_serial(tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    ensure_local_keys(settings)
    platform = PlatformKeyDirectory.from_settings(settings)
    serial, key = new_platform_key(sandbox_keys_dir(settings), Path(settings.wechatpay_platform_keys_dir))
    found = platform.public_key(serial)
    assert found is not None and found.public_numbers() == key.public_key().public_numbers()
    assert serial in platform.serials()


@pytest.mark.parametrize("serial", ["NOSUCHSERIAL", "../merchant", "", "x" * 65])
def test_a_serial_without_a_file_or_not_a_serial_finds_nothing(tmp_path: Path, serial: str) -> None:
    settings = local_settings(tmp_path)
    ensure_local_keys(settings)
    assert PlatformKeyDirectory.from_settings(settings).public_key(serial) is None


def test_a_new_file_never_replaces_an_existing_one(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "key"
    assert write_new_file(path, b"first", 0o600)
    assert not write_new_file(path, b"second", 0o600)
    assert path.read_bytes() == b"first"
    assert [p.name for p in path.parent.iterdir()] == ["key"]
