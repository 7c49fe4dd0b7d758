"""Where keys come from: environment, a private credentials file, the OS keyring."""

from __future__ import annotations

import os
import sys
from typing import ClassVar

import pytest
from pydantic import SecretStr

from reelscore.errors import AuthenticationError, InputError
from reelscore.providers.secrets import find_secret, load_api_key, read_credentials_file

KEY = "rsk-SECRETS-77aa88bb99cc00dd11ee22ff33aa44bb"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in ("ELEVENLABS_API_KEY", "REELSCORE_MOUNTSEA_KEY", "MOUNTSEA_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("REELSCORE_CREDENTIALS", str(tmp_path / "credentials.toml"))
    monkeypatch.setenv("REELSCORE_NO_KEYRING", "1")


def write_creds(tmp_path, text, mode=0o600):
    p = tmp_path / "credentials.toml"
    p.write_text(text)
    os.chmod(p, mode)
    return p


def test_environment_wins(monkeypatch, tmp_path):
    write_creds(tmp_path, '[elevenlabs]\napi_key = "from-file-000000"\n')
    monkeypatch.setenv("ELEVENLABS_API_KEY", KEY)
    key, source = load_api_key("elevenlabs")
    assert isinstance(key, SecretStr) and key.get_secret_value() == KEY
    assert source == "$ELEVENLABS_API_KEY"
    assert KEY not in repr(key) and KEY not in str(key)


def test_explicit_key_wins_over_everything(monkeypatch):
    monkeypatch.setenv("ELEVENLABS_API_KEY", "env-key-0000000")
    key, source = load_api_key("elevenlabs", explicit=SecretStr(KEY))
    assert key.get_secret_value() == KEY and source == "the configured key"


def test_private_credentials_file(tmp_path):
    p = write_creds(tmp_path, f'[mountsea]\napi_key = "{KEY}"\n[s3]\naccess_key_id = "AK"\n')
    key, source = load_api_key("mountsea")
    assert key.get_secret_value() == KEY
    assert str(p) in source and KEY not in source
    assert read_credentials_file(p)["s3"] == {"access_key_id": "AK"}


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_group_or_world_readable_file_is_refused(tmp_path, mode):
    p = write_creds(tmp_path, f'[elevenlabs]\napi_key = "{KEY}"\n', mode)
    with pytest.raises(InputError) as ei:
        load_api_key("elevenlabs")
    assert f"chmod 600 {p}" in str(ei.value)
    assert KEY not in str(ei.value)


def test_invalid_toml_does_not_echo_the_file(tmp_path):
    write_creds(tmp_path, f'[elevenlabs]\napi_key = "{KEY}\n')
    with pytest.raises(InputError, match="not valid TOML") as ei:
        load_api_key("elevenlabs")
    assert KEY not in str(ei.value)


def test_missing_key_message(tmp_path):
    with pytest.raises(AuthenticationError) as ei:
        load_api_key("elevenlabs")
    msg = str(ei.value)
    assert "$ELEVENLABS_API_KEY" in msg and "credentials.toml" in msg
    assert "keyring set reelscore elevenlabs" in msg


def test_keyring_backend(monkeypatch):
    keyring = pytest.importorskip("keyring")
    from keyring.backend import KeyringBackend

    class Memory(KeyringBackend):
        priority = 1  # type: ignore[assignment]
        store: ClassVar[dict[tuple[str, str], str]] = {("reelscore", "elevenlabs"): KEY}

        def get_password(self, service, username):
            return self.store.get((service, username))

        def set_password(self, service, username, password):  # pragma: no cover
            self.store[(service, username)] = password

        def delete_password(self, service, username):  # pragma: no cover
            self.store.pop((service, username), None)

    old = keyring.get_keyring()
    keyring.set_keyring(Memory())
    monkeypatch.delenv("REELSCORE_NO_KEYRING")
    try:
        key, source = load_api_key("elevenlabs")
        assert key.get_secret_value() == KEY and "keyring" in source
        assert find_secret("mountsea") is None
    finally:
        keyring.set_keyring(old)
