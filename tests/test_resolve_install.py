"""The Scripts-menu installer: the right per-user folder per OS (in a temporary home), a launcher
that records this environment, finds reelscore without PYTHONPATH, and uninstall removing only
what it installed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from reelscore.errors import OutputError
from reelscore.resolve.install import (
    INSTALLED_NAME,
    Environment,
    current_environment,
    install,
    render_launcher,
    scripts_dir,
    template_text,
    uninstall,
)


def test_folders_per_os(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert scripts_dir(platform="darwin", home=home) == (
        home / "Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts")
    assert scripts_dir(platform="linux", home=home) == home / ".local/share/DaVinciResolve/Fusion/Scripts"
    appdata = tmp_path / "AppData" / "Roaming"
    assert scripts_dir(platform="win32", home=home, env={"APPDATA": str(appdata)}) == (
        appdata / "Blackmagic Design" / "DaVinci Resolve" / "Support" / "Fusion" / "Scripts")
    # No %APPDATA%: the usual place under the profile, without a doubled "Roaming".
    assert scripts_dir(platform="win32", home=home, env={}) == (
        home / "AppData/Roaming/Blackmagic Design/DaVinci Resolve/Support/Fusion/Scripts")


@pytest.mark.parametrize("platform", ["darwin", "win32", "linux"])
def test_install_writes_the_launcher_into_utility(tmp_path: Path, platform: str) -> None:
    home = tmp_path / "home"
    env = {"APPDATA": str(home / "AppData" / "Roaming")}
    result = install(platform=platform, home=home, env=env)
    assert result.path == scripts_dir(platform=platform, home=home, env=env) / "Utility" / INSTALLED_NAME
    assert result.path.is_file() and not result.replaced
    assert [p.relative_to(home) for p in home.rglob("*") if p.is_file()] == [result.path.relative_to(home)]
    text = result.path.read_text()
    compile(text, str(result.path), "exec")
    assert f"REELSCORE_PYTHON = {sys.executable!r}" in text
    assert f"REELSCORE_VERSION_INFO = {tuple(sys.version_info[:2])!r}" in text
    assert install(platform=platform, home=home, env=env).replaced  # reinstall is idempotent
    assert uninstall(platform=platform, home=home, env=env) == [result.path]
    assert not result.path.exists()


def test_uninstall_and_install_leave_other_scripts_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    base = scripts_dir(platform="linux", home=home)
    (base / "Utility").mkdir(parents=True)
    other = base / "Utility" / "Batch IO.py"
    other.write_text("print('not ours')\n")
    installed = install(platform="linux", home=home).path
    assert other.read_text() == "print('not ours')\n"
    assert uninstall(platform="linux", home=home) == [installed]
    assert other.exists()
    foreign = base / "Utility" / INSTALLED_NAME
    foreign.write_text("print('someone else')\n")
    with pytest.raises(OutputError, match="was not written by reelscore"):
        install(platform="linux", home=home)
    assert foreign.read_text() == "print('someone else')\n"


def test_launcher_values_survive_windows_paths() -> None:
    env = Environment(python=r"C:\Users\ed\venv\Scripts\python.exe", version_info=(3, 12),
                      site_dirs=(r"C:\Users\ed\venv\Lib\site-packages",), paths=())
    text = render_launcher(template_text(), env)
    ns: dict[str, object] = {"__name__": "reelscore_launcher_under_test"}
    exec(compile(text, "launcher", "exec"), ns)
    assert ns["REELSCORE_PYTHON"] == r"C:\Users\ed\venv\Scripts\python.exe"
    assert ns["REELSCORE_SITE_DIRS"] == [r"C:\Users\ed\venv\Lib\site-packages"]
    assert ns["REELSCORE_VERSION_INFO"] == (3, 12)


def _launch(launcher: Path) -> subprocess.CompletedProcess[str]:
    """Run the launcher as Resolve would: a bare interpreter (no site, no PYTHONPATH), globals
    without a usable `resolve` (so it ends at the connection error, printed by reelscore)."""
    code = ("import runpy, sys; runpy.run_path(sys.argv[1], "
            "init_globals={'resolve': None}, run_name='__main__')")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(launcher.parent)}
    return subprocess.run([sys.executable, "-I", "-S", "-c", code, str(launcher)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def test_launcher_finds_reelscore_in_process_without_path_setup(tmp_path: Path) -> None:
    launcher = install(platform="linux", home=tmp_path).path
    proc = _launch(launcher)
    out = proc.stdout + proc.stderr
    assert "cannot connect to DaVinci Resolve's scripting API" in out, out
    assert "running" not in out  # it imported reelscore in-process, no fallback


def test_launcher_reexecs_the_recorded_python_when_versions_differ(tmp_path: Path) -> None:
    env = current_environment()
    other = Environment(env.python, (2, 7), env.site_dirs, env.paths)
    launcher = tmp_path / "launcher.py"
    launcher.write_text(render_launcher(template_text(), other))
    proc = _launch(launcher)
    out = proc.stdout + proc.stderr
    # The recorded interpreter ran `-m reelscore.resolve.dialog` and its output was relayed.
    assert "reelscore: cannot connect to DaVinci Resolve's scripting API" in out, out


def test_uninstalled_launcher_says_what_to_do(tmp_path: Path, capsys) -> None:
    spec = importlib.util.spec_from_file_location(
        "reelscore_launcher_under_test",
        Path(__file__).resolve().parents[1] / "resolve_scripts" / "score_with_reelscore.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main({}) == 2
    assert "run that command in the environment" in capsys.readouterr().out
