"""The DaVinci Resolve host: connect, read the timeline, render through the render queue, place
the music on a new track, and the Workspace > Scripts menu entry.

* :mod:`~reelscore.resolve.api`          the checked-call seam and the Resolve error classes
* :mod:`~reelscore.resolve.connect`      acquiring ``resolve`` (menu globals or external)
* :mod:`~reelscore.resolve.reader`       timeline -> OTIO (cross-checked with Resolve's export)
* :mod:`~reelscore.resolve.render_queue` the :class:`reelscore.render.Renderer` on the render queue
* :mod:`~reelscore.resolve.placement`    WAV -> new audio track at an absolute record frame
* :mod:`~reelscore.resolve.workflow`     the whole run, shared by the dialog and the CLI
* :mod:`~reelscore.resolve.dialog`       the UIManager dialog (menu script)
* :mod:`~reelscore.resolve.install`      per-OS Scripts folder, launcher install/uninstall
* :mod:`~reelscore.resolve.cli`          ``reelscore resolve install | uninstall | score``

Importing this package imports no Resolve module: everything Resolve-specific is reached lazily.
"""

from __future__ import annotations

from reelscore.resolve.api import (
    PlacementError,
    Ref,
    ResolveCallError,
    ResolveError,
    ResolveRenderError,
    ResolveUnavailableError,
)
from reelscore.resolve.connect import ResolveSession

# `connect` is not re-exported: the name would shadow the submodule reelscore.resolve.connect.

__all__ = [
    "PlacementError",
    "Ref",
    "ResolveCallError",
    "ResolveError",
    "ResolveRenderError",
    "ResolveSession",
    "ResolveUnavailableError",
]
