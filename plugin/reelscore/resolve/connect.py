"""Getting hold of a running DaVinci Resolve.

Acquisition order (resolve_api.md §1, §3): the ``resolve`` global a menu script receives →
``bmd.scriptapp("Resolve")`` → ``app.GetResolve()`` → the documented ``DaVinciResolveScript``
module (already importable, e.g. under ResolvePython; else from ``RESOLVE_SCRIPT_API/Modules`` or
the per-OS default) → ``fusionscript`` loaded directly from ``RESOLVE_SCRIPT_LIB`` or the per-OS
default with ``importlib``'s ExtensionFileLoader (the shipped module still uses ``imp``, gone in
Python 3.12). Every failure ends in a :class:`ResolveUnavailableError` that lists what was tried,
the likely cause (Free edition, external scripting off, Resolve not running) and the OTIO route.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from types import ModuleType
from typing import Any

from reelscore.resolve.api import Ref, ResolveCallError, ResolveError, ResolveUnavailableError

log = logging.getLogger(__name__)

OTIO_ROUTE = (
    "without scripting, use the OTIO route: in Resolve, File > Export > Timeline... > "
    "OpenTimelineIO (*.otio); in a terminal, `reelscore score cut.otio -o cut_scored.otio`; "
    "then File > Import > Timeline... cut_scored.otio (the music is on a new 'Score' track)"
)


def _os_key(platform: str) -> str:
    if platform.startswith("win") or platform == "cygwin":
        return "windows"
    if platform == "darwin":
        return "macos"
    return "linux"


def default_script_api_dirs(platform: str, env: Mapping[str, str]) -> list[str]:
    """Where Resolve installs its Developer/Scripting folder, per OS (resolve_api.md §1)."""
    key = _os_key(platform)
    if key == "macos":
        return ["/Library/Application Support/Blackmagic Design/DaVinci Resolve/Developer/Scripting"]
    if key == "windows":
        program_data = env.get("PROGRAMDATA", r"C:\ProgramData")
        return [str(PureWindowsPath(program_data, "Blackmagic Design", "DaVinci Resolve",
                                    "Support", "Developer", "Scripting"))]
    return ["/opt/resolve/Developer/Scripting", "/home/resolve/Developer/Scripting"]


def default_script_libs(platform: str, env: Mapping[str, str]) -> list[str]:
    key = _os_key(platform)
    if key == "macos":
        return ["/Applications/DaVinci Resolve/DaVinci Resolve.app/Contents/Libraries/Fusion/"
                "fusionscript.so"]
    if key == "windows":
        program_files = env.get("PROGRAMFILES", r"C:\Program Files")
        return [str(PureWindowsPath(program_files, "Blackmagic Design", "DaVinci Resolve",
                                    "fusionscript.dll"))]
    return ["/opt/resolve/libs/Fusion/fusionscript.so", "/home/resolve/libs/Fusion/fusionscript.so"]


def script_api_dirs(platform: str, env: Mapping[str, str]) -> list[str]:
    found = [env["RESOLVE_SCRIPT_API"]] if env.get("RESOLVE_SCRIPT_API") else []
    return found + [d for d in default_script_api_dirs(platform, env) if d not in found]


def script_libs(platform: str, env: Mapping[str, str]) -> list[str]:
    found = [env["RESOLVE_SCRIPT_LIB"]] if env.get("RESOLVE_SCRIPT_LIB") else []
    return found + [p for p in default_script_libs(platform, env) if p not in found]


def _modules_dir(api_dir: str, platform: str) -> str:
    if _os_key(platform) == "windows":
        return str(PureWindowsPath(api_dir, "Modules"))
    return str(PurePosixPath(api_dir, "Modules"))


def load_extension(name: str, path: str) -> ModuleType:
    """Load a native extension module from an explicit file (what ``imp.load_dynamic`` did)."""
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_loader(name, loader, origin=path)
    if spec is None:  # pragma: no cover - spec_from_loader only fails on odd loaders
        raise ImportError(f"cannot make a module spec for {path}")
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@dataclass
class ScriptModule:
    """Where ``scriptapp`` came from, and what was tried before."""

    module: Any | None
    source: str
    tried: list[str] = field(default_factory=list)


def find_script_module(
    *,
    platform: str | None = None,
    env: Mapping[str, str] | None = None,
    import_module: Callable[[str], ModuleType] = importlib.import_module,
    extension_loader: Callable[[str, str], ModuleType] = load_extension,
) -> ScriptModule:
    """Import ``DaVinciResolveScript`` (or ``fusionscript`` directly) without the user setting
    PYTHONPATH. Never raises: returns ``module=None`` with the list of what was tried."""
    platform = platform or sys.platform
    env = os.environ if env is None else env
    tried: list[str] = []
    try:
        return ScriptModule(import_module("DaVinciResolveScript"), "DaVinciResolveScript", tried)
    except ImportError as exc:
        tried.append(f"import DaVinciResolveScript: {exc}")
    for api_dir in script_api_dirs(platform, env):
        modules = _modules_dir(api_dir, platform)
        if not Path(modules, "DaVinciResolveScript.py").is_file():
            tried.append(f"{modules}: no DaVinciResolveScript.py")
            continue
        if modules not in sys.path:
            sys.path.insert(0, modules)
        sys.modules.pop("DaVinciResolveScript", None)
        try:
            mod = import_module("DaVinciResolveScript")
            return ScriptModule(mod, f"DaVinciResolveScript from {modules}", tried)
        except ImportError as exc:  # e.g. its `import imp` on Python >= 3.12
            tried.append(f"DaVinciResolveScript from {modules}: {exc}")
    for lib in script_libs(platform, env):
        if not Path(lib).is_file():
            tried.append(f"{lib}: not found")
            continue
        try:
            return ScriptModule(extension_loader("fusionscript", lib), f"fusionscript {lib}", tried)
        except (ImportError, OSError) as exc:
            tried.append(f"fusionscript {lib}: {exc}")
    return ScriptModule(None, "", tried)


@dataclass
class ResolveSession:
    """A live connection: the ``resolve`` object plus what kind of Resolve it is."""

    resolve: Any
    fusion: Any | None
    bmd: Any | None
    source: str
    product: str
    version: tuple[int, ...]
    version_string: str

    @property
    def is_studio(self) -> bool:
        return "studio" in self.product.lower()

    @property
    def edition(self) -> str:
        return "Studio" if self.is_studio else "Free"

    def describe(self) -> str:
        return f"{self.product} {self.version_string} (via {self.source})"

    def ref(self) -> Ref:
        return Ref(self.resolve, "Resolve", "DaVinci Resolve")

    def require_version(self, major: int, what: str) -> None:
        if self.version and self.version[0] < major:
            raise ResolveError(
                f"{what} needs DaVinci Resolve {major} or later; this is {self.version_string}",
                hint="update Resolve, or use the OTIO route: " + OTIO_ROUTE,
            )

    # --------------------------------------------------------------------------- navigation

    def project(self) -> Ref:
        pm = self.ref().get(
            "GetProjectManager", kind="ProjectManager", label="the project manager",
            hint="Resolve is starting up or shutting down; try again when it is idle",
        )
        try:
            return pm.get("GetCurrentProject", kind="Project", label="the current project")
        except ResolveCallError as exc:
            raise ResolveCallError(
                exc.call, exc.target, exc.result, expected="",
                message="no project is open in DaVinci Resolve",
                hint="open the project with the cut to score (File > Open Project...), then run again",
            ) from exc

    def timeline(self, project: Ref, name: str | None = None) -> Ref:
        """The current timeline, or the one called *name*."""
        pname = project.probe("GetName") or "the current project"
        if name is None:
            try:
                raw = project.call("GetCurrentTimeline")
            except ResolveCallError as exc:
                raise ResolveCallError(
                    exc.call, exc.target, exc.result, expected="",
                    message=f"project {pname!r} has no current timeline",
                    hint="open the timeline to score in the Edit page (or pass --timeline NAME)",
                ) from exc
            tname = raw.GetName() if callable(getattr(raw, "GetName", None)) else None
            return Ref(raw, "Timeline", f"timeline {tname!r}")
        count = project.call("GetTimelineCount", expect="number")
        names: list[str] = []
        for i in range(1, int(count) + 1):
            raw = project.call("GetTimelineByIndex", i)
            tname = raw.GetName()
            names.append(str(tname))
            if tname == name:
                return Ref(raw, "Timeline", f"timeline {name!r}")
        raise ResolveError(
            f"project {pname!r} has no timeline named {name!r}",
            hint="timelines in the project: " + (", ".join(repr(n) for n in names) or "none"),
        )


def _try(fn: Callable[[], Any], tried: list[str], what: str) -> Any:
    try:
        value = fn()
    except Exception as exc:  # foreign objects from the host: anything can come out
        tried.append(f"{what}: {type(exc).__name__}: {exc}")
        return None
    if value is None:
        tried.append(f"{what}: returned None")
    return value


def _version(resolve: Any) -> tuple[tuple[int, ...], str]:
    raw = resolve.GetVersion() if callable(getattr(resolve, "GetVersion", None)) else None
    parts: list[int] = []
    if isinstance(raw, (list, tuple)):
        for p in raw:
            if isinstance(p, int) and not isinstance(p, bool):
                parts.append(p)
            elif isinstance(p, str) and p.isdigit():
                parts.append(int(p))
            else:
                break
    text = resolve.GetVersionString() if callable(getattr(resolve, "GetVersionString", None)) else None
    if not isinstance(text, str) or not text:
        text = ".".join(str(p) for p in parts) or "unknown version"
    return tuple(parts), text


def unavailable_message(tried: list[str], *, in_app: bool) -> ResolveUnavailableError:
    lines = ["cannot connect to DaVinci Resolve's scripting API"]
    lines += [f"  - tried {t}" for t in tried]
    if in_app:
        lines.append(
            "  the menu script received no usable 'resolve' object; DaVinci Resolve 21.1 and later "
            "run Python scripts in Studio only"
        )
    else:
        lines.append(
            "  is Resolve running? External scripting needs DaVinci Resolve Studio with "
            "Preferences > System > General > External scripting using = Local; the Free edition "
            "only runs scripts from Workspace > Scripts (and not Python from 21.1)"
        )
    return ResolveUnavailableError("\n".join(lines), hint=OTIO_ROUTE)


def connect(
    namespace: Mapping[str, Any] | None = None,
    *,
    external: bool = True,
    platform: str | None = None,
    env: Mapping[str, str] | None = None,
    find_module: Callable[[], ScriptModule] | None = None,
) -> ResolveSession:
    """Connect to Resolve. *namespace* is a menu script's globals (``resolve``, ``fusion``,
    ``bmd``, ``app``); ``external=False`` stops before the DaVinciResolveScript import."""
    ns: Mapping[str, Any] = namespace or {}
    tried: list[str] = []
    bmd = ns.get("bmd")
    fusion = ns.get("fusion") or ns.get("fu")
    resolve = ns.get("resolve")
    source = "the menu script's 'resolve'"
    if resolve is None:
        if ns:
            tried.append("the 'resolve' global: not set")
        given_bmd = bmd
        if given_bmd is not None:
            resolve = _try(lambda: given_bmd.scriptapp("Resolve"), tried,
                           "bmd.scriptapp('Resolve')")
            source = "bmd.scriptapp"
    if resolve is None and ns.get("app") is not None:
        app = ns["app"]
        resolve = _try(lambda: app.GetResolve(), tried, "app.GetResolve()")
        source = "app.GetResolve()"
    if resolve is None and external:
        found = (find_module or (lambda: find_script_module(platform=platform, env=env)))()
        tried.extend(found.tried)
        if found.module is not None:
            module = found.module
            resolve = _try(lambda: module.scriptapp("Resolve"), tried,
                           f"{found.source}: scriptapp('Resolve')")
            source = found.source
            bmd = bmd or module
            if resolve is not None and fusion is None:
                fusion = _try(lambda: module.scriptapp("Fusion"), [], "scriptapp('Fusion')")
    if resolve is None:
        raise unavailable_message(tried, in_app=bool(ns))
    if fusion is None and callable(getattr(resolve, "Fusion", None)):
        fusion = _try(lambda: resolve.Fusion(), [], "resolve.Fusion()")
    product = resolve.GetProductName() if callable(getattr(resolve, "GetProductName", None)) else None
    version, version_string = _version(resolve)
    session = ResolveSession(
        resolve=resolve,
        fusion=fusion,
        bmd=bmd,
        source=source,
        product=product if isinstance(product, str) and product else "DaVinci Resolve",
        version=version,
        version_string=version_string,
    )
    log.info("connected to %s", session.describe())
    return session
