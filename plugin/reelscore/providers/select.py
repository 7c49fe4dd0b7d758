"""Which provider a run uses when the user names none (``auto``).

``auto`` means ElevenLabs when a key for it is configured (environment, credentials file or
keyring; see :mod:`reelscore.providers.secrets`), else the offline ``local`` engine.
"""

from __future__ import annotations

import os

from reelscore.errors import InputError, ReelscoreError
from reelscore.providers import PROVIDER_NAMES, secrets


def check_provider_name(name: str, *, allow_auto: bool = False) -> None:
    if name not in PROVIDER_NAMES and not (allow_auto and name == "auto"):
        raise InputError(f"unknown provider {name!r}",
                         hint=f"use --provider with one of: {', '.join(PROVIDER_NAMES)}")


def pick_provider(name: str) -> str:
    """*name* checked against the known providers, with ``auto`` resolved."""
    if name != "auto":
        check_provider_name(name)
        return name
    if os.environ.get("ELEVENLABS_API_KEY"):
        return "elevenlabs"
    try:
        if secrets.find_secret("elevenlabs") is not None:
            return "elevenlabs"
    except ReelscoreError:
        pass  # an unreadable credentials file is reported when a provider needs its key
    return "local"
