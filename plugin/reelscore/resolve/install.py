"""Install / uninstall the Workspace > Scripts entry.

The launcher template (``resolve_scripts/score_with_reelscore.py``) is copied into the per-user
Scripts folder of the OS, ``Utility/`` subfolder (shown on every page), with the interpreter, its
version and its site directories filled in, so the menu script finds this installation without
the user editing paths (resolve_api.md §3):

=========  ===========================================================================
macOS      ~/Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts
Windows    %APPDATA%\\Blackmagic Design\\DaVinci Resolve\\Support\\Fusion\\Scripts
Linux      ~/.local/share/DaVinciResolve/Fusion/Scripts
=========  ===========================================================================
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import reelscore
from reelscore.errors import OutputError, ReelscoreError
from reelscore.fsutil import atomic_write_text

TEMPLATE_NAME = "score_with_reelscore.py"
INSTALLED_NAME = "Score with reelscore.py"  # a space: it can never shadow `import reelscore`
MARKER = "# reelscore-launcher"
SUBFOLDER = "Utility"


def _os_key(platform: str) -> str:
    if platform.startswith("win") or platform == "cygwin":
        return "windows"
    if platform == "darwin":
        return "macos"
    return "linux"


def scripts_dir(
    *,
    platform: str | None = None,
    home: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Path:
    """Resolve's per-user Fusion/Scripts folder for *platform* (default: this OS)."""
    platform = platform or sys.platform
    env = os.environ if env is None else env
    home = home or Path.home()
    key = _os_key(platform)
    if key == "macos":
        return home / "Library" / "Application Support" / "Blackmagic Design" / "DaVinci Resolve" / "Fusion" / "Scripts"
    if key == "windows":
        # %APPDATA% already ends in Roaming (the README's "%APPDATA%\Roaming" is a doc bug).
        appdata = Path(env["APPDATA"]) if env.get("APPDATA") else home / "AppData" / "Roaming"
        return appdata / "Blackmagic Design" / "DaVinci Resolve" / "Support" / "Fusion" / "Scripts"
    return home / ".local" / "share" / "DaVinciResolve" / "Fusion" / "Scripts"


def launcher_path(
    *,
    platform: str | None = None,
    home: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Path:
    return scripts_dir(platform=platform, home=home, env=env) / SUBFOLDER / INSTALLED_NAME


def template_text() -> str:
    """The launcher template: a packaged copy if the wheel has one, else the source checkout's."""
    here = Path(__file__).resolve()
    candidates = [here.parent / "scripts" / TEMPLATE_NAME,
                  here.parents[3] / "resolve_scripts" / TEMPLATE_NAME]
    for c in candidates:
        if c.is_file():
            return c.read_text("utf-8")
    raise ReelscoreError(
        "the Resolve launcher template is missing from this installation (looked in "
        + ", ".join(str(c.parent) for c in candidates) + ")",
        hint="reinstall reelscore from a complete source or wheel",
    )


@dataclass(frozen=True)
class Environment:
    python: str
    version_info: tuple[int, int]
    site_dirs: tuple[str, ...]
    paths: tuple[str, ...]


def current_environment() -> Environment:
    """What the launcher needs to import this reelscore: interpreter, version, site dirs."""
    site_dirs: list[str] = []
    for key in ("purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p and p not in site_dirs:
            site_dirs.append(p)
    package_root = str(Path(reelscore.__file__).resolve().parent.parent)
    paths = [] if any(Path(package_root) == Path(d).resolve() for d in site_dirs) else [package_root]
    return Environment(
        python=sys.executable,
        version_info=(sys.version_info[0], sys.version_info[1]),
        site_dirs=tuple(site_dirs),
        paths=tuple(paths),
    )


def _constant(text: str) -> Callable[[re.Match[str]], str]:
    # A function, not a replacement string: Windows paths hold backslashes.
    return lambda _m: text


def render_launcher(template: str, env: Environment) -> str:
    values = {
        "REELSCORE_PYTHON": repr(env.python),
        "REELSCORE_VERSION_INFO": repr(tuple(env.version_info)),
        "REELSCORE_SITE_DIRS": repr(list(env.site_dirs)),
        "REELSCORE_PATHS": repr(list(env.paths)),
    }
    text = template
    for name, value in values.items():
        line = f"{name} = {value}"
        text, n = re.subn(rf"^{name} = .*$", _constant(line), text, count=1, flags=re.M)
        if n != 1:
            raise ReelscoreError(f"the launcher template has no '{name} = ...' line")
    return text


@dataclass(frozen=True)
class InstallResult:
    path: Path
    python: str
    replaced: bool


def install(
    *,
    platform: str | None = None,
    home: Path | None = None,
    env: Mapping[str, str] | None = None,
    environment: Environment | None = None,
) -> InstallResult:
    target = launcher_path(platform=platform, home=home, env=env)
    environment = environment or current_environment()
    text = render_launcher(template_text(), environment)
    replaced = target.exists()
    if replaced and MARKER not in target.read_text("utf-8", errors="replace"):
        raise OutputError(
            f"{str(target)!r} exists and was not written by reelscore; not overwriting it",
            hint="move that file away, then run `reelscore resolve install` again",
        )
    atomic_write_text(target, text)
    return InstallResult(target, environment.python, replaced)


def uninstall(
    *,
    platform: str | None = None,
    home: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> list[Path]:
    """Remove the launcher(s) reelscore installed; leave Resolve's folders and other files."""
    base = scripts_dir(platform=platform, home=home, env=env)
    removed: list[Path] = []
    if not base.is_dir():
        return removed
    for path in sorted(base.rglob("*.py")):
        try:
            if MARKER in path.read_text("utf-8", errors="replace"):
                path.unlink()
                removed.append(path)
        except OSError as exc:
            raise OutputError(f"cannot remove {str(path)!r}: {exc.strerror}") from exc
    return removed
