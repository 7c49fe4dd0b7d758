"""Connecting: menu-script globals, bmd.scriptapp, app.GetResolve, the DaVinciResolveScript module
found through RESOLVE_SCRIPT_API, the fusionscript fallback, and what is said when nothing works."""

from __future__ import annotations

import sys
import types
from fractions import Fraction
from pathlib import Path

import pytest

from reelscore.resolve.api import Ref, ResolveCallError, ResolveError, ResolveUnavailableError
from reelscore.resolve.connect import (
    connect,
    default_script_api_dirs,
    default_script_libs,
    find_script_module,
)
from tests.fake_resolve import FakeResolve, StubBmd


class _App:
    def __init__(self, resolve: object) -> None:
        self.resolve = resolve

    def GetResolve(self) -> object:
        return self.resolve


def test_menu_globals_come_first() -> None:
    fake = FakeResolve(product="DaVinci Resolve Studio", version=[20, 3, 2, 9, ""])
    session = connect({"resolve": fake, "bmd": StubBmd(None)})
    assert session.resolve is fake and session.source == "the menu script's 'resolve'"
    assert (session.is_studio, session.edition, session.version) == (True, "Studio", (20, 3, 2, 9))
    assert session.describe() == "DaVinci Resolve Studio 20.3.2.9 (via the menu script's 'resolve')"


def test_bmd_scriptapp_then_app_get_resolve() -> None:
    fake = FakeResolve()
    assert connect({"bmd": StubBmd(fake)}, external=False).source == "bmd.scriptapp"
    session = connect({"bmd": StubBmd(None), "app": _App(fake)}, external=False)
    assert session.resolve is fake and session.source == "app.GetResolve()"


def test_free_edition_and_version_gate() -> None:
    session = connect({"resolve": FakeResolve(product="DaVinci Resolve", version=[17, 4, 6, 4, ""])})
    assert session.edition == "Free"
    with pytest.raises(ResolveError, match=r"needs DaVinci Resolve 18 or later; this is 17\.4\.6\.4"):
        session.require_version(18, "placing the music at an exact frame")


def _module_dir(tmp_path: Path, body: str) -> Path:
    api = tmp_path / "Scripting"
    (api / "Modules").mkdir(parents=True)
    (api / "Modules" / "DaVinciResolveScript.py").write_text(body)
    return api


@pytest.fixture()
def clean_modules(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delitem(sys.modules, "DaVinciResolveScript", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    sys.modules.pop("DaVinciResolveScript", None)


def test_external_module_found_through_resolve_script_api(tmp_path: Path, monkeypatch, clean_modules) -> None:
    api = _module_dir(tmp_path, (
        "from tests.fake_resolve import FakeResolve\n"
        "_R = FakeResolve(version=[19, 1, 3, 7, ''])\n"
        "def scriptapp(name, host=None):\n"
        "    return _R if name == 'Resolve' else None\n"
    ))
    monkeypatch.setenv("RESOLVE_SCRIPT_API", str(api))
    monkeypatch.delenv("RESOLVE_SCRIPT_LIB", raising=False)
    session = connect()
    assert session.source == f"DaVinciResolveScript from {api / 'Modules'}"
    assert session.version == (19, 1, 3, 7)
    assert session.bmd is sys.modules["DaVinciResolveScript"]


def test_fusionscript_fallback_when_the_module_cannot_load(tmp_path: Path, clean_modules) -> None:
    # The shipped module still does `import imp`, gone in Python 3.12.
    api = _module_dir(tmp_path, "import imp_gone_in_312\n")
    lib = tmp_path / "fusionscript.so"
    lib.write_bytes(b"\x7fELF")
    loaded: list[tuple[str, str]] = []
    fake = FakeResolve()

    def loader(name: str, path: str) -> types.ModuleType:
        loaded.append((name, path))
        mod = types.ModuleType(name)
        mod.scriptapp = lambda app, host=None: fake if app == "Resolve" else None  # type: ignore[attr-defined]
        return mod

    env = {"RESOLVE_SCRIPT_API": str(api), "RESOLVE_SCRIPT_LIB": str(lib)}
    found = find_script_module(platform="linux", env=env, extension_loader=loader)
    assert loaded == [("fusionscript", str(lib))]
    assert found.source == f"fusionscript {lib}"
    assert any("imp_gone_in_312" in t for t in found.tried)
    session = connect(find_module=lambda: found)
    assert session.resolve is fake


def test_nothing_found_explains_and_offers_the_otio_route(tmp_path: Path, clean_modules) -> None:
    env = {"RESOLVE_SCRIPT_API": str(tmp_path / "nowhere")}
    with pytest.raises(ResolveUnavailableError) as info:
        connect(find_module=lambda: find_script_module(platform="linux", env=env))
    msg = str(info.value)
    assert f"{tmp_path / 'nowhere' / 'Modules'}: no DaVinciResolveScript.py" in msg
    assert "/opt/resolve/libs/Fusion/fusionscript.so: not found" in msg
    assert "External scripting using = Local" in msg and "Studio" in msg
    assert "File > Export > Timeline" in msg and "reelscore score cut.otio -o cut_scored.otio" in msg
    assert info.value.exit_code == 8


def test_scriptapp_returning_none_in_a_menu_script() -> None:
    # Free 21.1+ / external scripting refused: scriptapp answers None.
    with pytest.raises(ResolveUnavailableError) as info:
        connect({"bmd": StubBmd(None)}, external=False)
    assert "bmd.scriptapp('Resolve'): returned None" in str(info.value)
    assert "21.1" in str(info.value) and "OTIO route" in str(info.value)


def test_default_locations_per_os() -> None:
    assert default_script_api_dirs("darwin", {}) == [
        "/Library/Application Support/Blackmagic Design/DaVinci Resolve/Developer/Scripting"]
    assert default_script_api_dirs("win32", {"PROGRAMDATA": r"D:\PD"}) == [
        r"D:\PD\Blackmagic Design\DaVinci Resolve\Support\Developer\Scripting"]
    assert default_script_api_dirs("linux", {})[0] == "/opt/resolve/Developer/Scripting"
    assert default_script_libs("darwin", {}) == [
        "/Applications/DaVinci Resolve/DaVinci Resolve.app/Contents/Libraries/Fusion/fusionscript.so"]
    assert default_script_libs("win32", {}) == [
        r"C:\Program Files\Blackmagic Design\DaVinci Resolve\fusionscript.dll"]


def test_no_project_and_no_timeline_messages() -> None:
    fake = FakeResolve()
    session = connect({"resolve": fake})
    fake.faults.add("no_project")
    with pytest.raises(ResolveCallError) as info:
        session.project()
    assert str(info.value).startswith("no project is open in DaVinci Resolve")
    assert "File > Open Project" in str(info.value)
    fake.faults.clear()
    fake.project.add_timeline("Cut", Fraction(24))
    fake.faults.add("no_timeline")
    with pytest.raises(ResolveCallError, match="project 'Feature' has no current timeline"):
        session.timeline(session.project())
    with pytest.raises(ResolveError) as named:
        session.timeline(session.project(), "Reel 9")
    assert "no timeline named 'Reel 9'" in str(named.value) and "'Cut'" in str(named.value)


def test_checked_calls_name_the_call_and_the_object() -> None:
    fake = FakeResolve()
    tl = fake.project.add_timeline("Cut v3", Fraction(24))
    ref = Ref(tl, "Timeline", "timeline 'Cut v3'")
    fake.faults.add("add_track_fails")
    with pytest.raises(ResolveCallError) as info:
        ref.call("AddTrack", "audio", "stereo", expect="true")
    assert str(info.value) == ("Resolve call Timeline.AddTrack('audio', 'stereo') on timeline "
                               "'Cut v3' returned False (expected True)")
    # Unknown methods return None on Resolve objects; the error says the build lacks it.
    assert tl.NoSuchMethod(1) is None
    with pytest.raises(ResolveCallError) as unknown:
        ref.call("NoSuchMethod", 1)
    assert "does not list Timeline.NoSuchMethod" in str(unknown.value)
    assert ref.call("GetItemListInTrack", "video", 1, expect="any") is None
    with pytest.raises(ResolveCallError, match="expected a list"):
        ref.call("GetItemListInTrack", "video", 1, expect="list")
