"""Where provider keys come from, in this order:

1. an explicit key (``ProviderConfig.api_key``, e.g. set by a host application);
2. the environment: ``ELEVENLABS_API_KEY`` (the official SDK's variable) for ``elevenlabs``,
   ``REELSCORE_MOUNTSEA_KEY`` for ``mountsea``;
3. a TOML credentials file readable only by its owner: ``$REELSCORE_CREDENTIALS`` or
   ``~/.config/reelscore/credentials.toml`` (``$XDG_CONFIG_HOME`` honoured)::

       [elevenlabs]
       api_key = "..."
       [mountsea]
       api_key = "..."

   A file that the group or others can read is refused (``chmod 600 <path>``);
4. the OS keyring, if the optional ``keyring`` package is installed: service ``reelscore``,
   user name = the provider name (``keyring set reelscore elevenlabs``).

S3 credentials for the clip uploader are not kept here: boto3's standard chain finds them
(:mod:`reelscore.providers.uploader`).

Keys are returned as pydantic ``SecretStr`` so they never print, log or serialise.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from pydantic import SecretStr

from reelscore.errors import AuthenticationError, InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

KEYRING_SERVICE = "reelscore"

ENV_VARS: dict[str, tuple[str, ...]] = {
    "elevenlabs": ("ELEVENLABS_API_KEY",),
    "mountsea": ("REELSCORE_MOUNTSEA_KEY", "MOUNTSEA_API_KEY"),
}


def credentials_path() -> Path:
    env = os.environ.get("REELSCORE_CREDENTIALS")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "reelscore" / "credentials.toml"


def _check_private(path: Path) -> None:
    if os.name != "posix":  # pragma: no cover - permissions are ACLs elsewhere
        return
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(
            f"refusing to read keys from {str(path)!r}: it is readable by other users "
            f"(mode {stat.filemode(mode)})",
            hint=f"run: chmod 600 {path}",
        )


def read_credentials_file(path: Path | None = None) -> dict[str, dict[str, str]]:
    """The credentials file as {section: {name: value}}; {} when there is none."""
    p = path or credentials_path()
    if not p.is_file():
        return {}
    _check_private(p)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read credentials file {str(p)!r}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        # The decoder's message quotes positions, not values; still keep it short.
        raise InputError(
            f"credentials file {str(p)!r} is not valid TOML ({str(exc).splitlines()[0]})",
            hint="each provider is a [section] with api_key = \"...\"",
        ) from None
    out: dict[str, dict[str, str]] = {}
    for section, values in doc.items():
        if isinstance(values, dict):
            out[section] = {k: v for k, v in values.items() if isinstance(v, str)}
    return out


def _from_keyring(user: str) -> str | None:
    if os.environ.get("REELSCORE_NO_KEYRING"):
        return None
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:
        return None
    try:
        value = keyring.get_password(KEYRING_SERVICE, user)
    except (KeyringError, RuntimeError, OSError):
        return None
    return value or None


def find_secret(
    provider: str,
    *,
    name: str = "api_key",
    env_vars: tuple[str, ...] = (),
    explicit: SecretStr | None = None,
    credentials_file: Path | None = None,
) -> tuple[SecretStr, str] | None:
    """The secret and a description of where it came from (never the value), or None."""
    if explicit is not None and explicit.get_secret_value():
        return explicit, "the configured key"
    for var in env_vars or ENV_VARS.get(provider, ()):
        value = os.environ.get(var, "").strip()
        if value:
            return SecretStr(value), f"${var}"
    creds = read_credentials_file(credentials_file)
    value = creds.get(provider, {}).get(name, "").strip()
    if value:
        return SecretStr(value), f"{credentials_file or credentials_path()} [{provider}].{name}"
    user = provider if name == "api_key" else f"{provider}:{name}"
    value = (_from_keyring(user) or "").strip()
    if value:
        return SecretStr(value), f"the OS keyring ({KEYRING_SERVICE}/{user})"
    return None


def load_api_key(
    provider: str,
    *,
    explicit: SecretStr | None = None,
    credentials_file: Path | None = None,
) -> tuple[SecretStr, str]:
    """The key for *provider*; an AuthenticationError that says how to set one if none is found."""
    found = find_secret(provider, explicit=explicit, credentials_file=credentials_file)
    if found is None:
        env = " or ".join(f"${v}" for v in ENV_VARS.get(provider, ()))
        path = credentials_file or credentials_path()
        raise AuthenticationError(
            f"no API key for {provider}: none in {env or 'the environment'}, "
            f"in {str(path)!r} or in the OS keyring",
            hint=f"export {ENV_VARS.get(provider, ('THE_KEY',))[0]}=..., or put "
            f"[{provider}] api_key = \"...\" in {path} (chmod 600), or run "
            f"`keyring set {KEYRING_SERVICE} {provider}`",
        )
    return found
