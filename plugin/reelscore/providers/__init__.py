"""Music sources. ``make_provider(name, config)`` returns one; see :mod:`reelscore.providers.base`.

The typed options a front end builds from configuration are exported here:
:class:`ElevenLabsOptions`, :class:`MountseaOptions` (with :class:`UploaderConfig`) and their common
base :class:`HttpOptions`; ``OPTIONS_MODELS`` maps each network provider to its model.
"""

from __future__ import annotations

from reelscore.errors import InputError
from reelscore.providers.base import (
    ClipRef,
    ComposeRequest,
    DraftRequest,
    GeneratedAudio,
    GenerationRequest,
    GenerationSettings,
    Provider,
    ProviderConfig,
    ProviderDefaults,
)
from reelscore.providers.options import (
    ElevenLabsOptions,
    HttpOptions,
    MountseaOptions,
    UploaderConfig,
)

PROVIDER_NAMES = ("local", "elevenlabs", "mountsea")
OPTIONS_MODELS: dict[str, type[HttpOptions]] = {
    "elevenlabs": ElevenLabsOptions,
    "mountsea": MountseaOptions,
}

__all__ = [
    "OPTIONS_MODELS",
    "PROVIDER_NAMES",
    "ClipRef",
    "ComposeRequest",
    "DraftRequest",
    "ElevenLabsOptions",
    "GeneratedAudio",
    "GenerationRequest",
    "GenerationSettings",
    "HttpOptions",
    "MountseaOptions",
    "Provider",
    "ProviderConfig",
    "ProviderDefaults",
    "UploaderConfig",
    "make_provider",
]

def make_provider(name: str, config: ProviderConfig | None = None) -> Provider:
    config = config or ProviderConfig()
    if name == "local":
        from reelscore.providers.local_compose import LocalEngine

        return LocalEngine(config)
    if name == "elevenlabs":
        from reelscore.providers.elevenlabs import ElevenLabsProvider

        return ElevenLabsProvider(config)
    if name == "mountsea":
        from reelscore.providers.mountsea import MountseaProvider

        return MountseaProvider(config)
    raise InputError(
        f"unknown provider {name!r}", hint=f"use --provider with one of: {', '.join(PROVIDER_NAMES)}"
    )
