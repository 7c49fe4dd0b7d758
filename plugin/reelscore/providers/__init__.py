"""Music sources. ``make_provider(name, config)`` returns one; see :mod:`reelscore.providers.base`."""

from __future__ import annotations

from reelscore.errors import InputError
from reelscore.providers.base import (
    ClipRef,
    GeneratedAudio,
    GenerationRequest,
    GenerationSettings,
    Provider,
    ProviderConfig,
)

PROVIDER_NAMES = ("local", "elevenlabs", "mountsea")

__all__ = [
    "PROVIDER_NAMES",
    "ClipRef",
    "GeneratedAudio",
    "GenerationRequest",
    "GenerationSettings",
    "Provider",
    "ProviderConfig",
    "make_provider",
]


def make_provider(name: str, config: ProviderConfig | None = None) -> Provider:
    config = config or ProviderConfig()
    if name == "local":
        from reelscore.providers.local import LocalProvider

        return LocalProvider(config)
    if name == "elevenlabs":
        from reelscore.providers.elevenlabs import ElevenLabsProvider

        return ElevenLabsProvider(config)
    if name == "mountsea":
        from reelscore.providers.mountsea import MountseaProvider

        return MountseaProvider(config)
    raise InputError(
        f"unknown provider {name!r}", hint=f"use --provider with one of: {', '.join(PROVIDER_NAMES)}"
    )
