"""The OTIO plugin package: discovery through the entry point, the hook, the media linker.

Everything goes through OTIO's own machinery: ``ActiveManifest`` discovery (no
``OTIO_PLUGIN_MANIFEST_PATH``), ``otio.hooks.run``, ``read_from_file(media_linker_name=...)``, and
the ``otioconvert`` / ``otiopluginfo`` console scripts of this environment as subprocesses.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
import json
import os
import shutil
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest
from opentimelineio import opentime

from reelscore.timecode import frames_to_tc, rt_frames
from reelscore.timeline import normalise
from reelscore.writeback import media_url, read_written
from tests.edits import build_timeline

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "otio_adapters" / "reelscore_otio"
BIN = Path(sys.executable).parent
R = Fraction(25)


def _exe(name: str) -> str:
    found = shutil.which(name, path=str(BIN))
    assert found, f"{name} is not installed beside {sys.executable}"
    return found


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OTIO_PLUGIN_MANIFEST_PATH", "OTIO_DISABLE_ENTRYPOINTS_PLUGINS",
                        "OTIO_DEFAULT_MEDIA_LINKER")}
    env.update(extra)
    return env


@pytest.fixture()
def discovered(monkeypatch):
    """OTIO's plugin manifest as found without OTIO_PLUGIN_MANIFEST_PATH (entry points only)."""
    for var in ("OTIO_PLUGIN_MANIFEST_PATH", "OTIO_DISABLE_ENTRYPOINTS_PLUGINS",
                "OTIO_DEFAULT_MEDIA_LINKER"):
        monkeypatch.delenv(var, raising=False)
    manifest = otio.plugins.ActiveManifest(force_reload=True)
    yield manifest
    otio.plugins.ActiveManifest(force_reload=True)


def small_timeline(media: Path, *, start_frame: int = 90000) -> otio.schema.Timeline:
    return build_timeline([[("clip", media, 31, 10, 60), ("clip", media, 31, 150, 50),
                            ("clip", media, 31, 300, 90)]], R, start_frame=start_frame,
                          name="reel 2")


# ------------------------------------------------------------------------------ the package


def test_manifest_declares_two_hook_scripts_and_a_media_linker():
    data = json.loads((PKG / "plugin_manifest.json").read_text("utf-8"))
    assert data["OTIO_SCHEMA"] == "PluginManifest.1"
    assert [(h["OTIO_SCHEMA"], h["name"]) for h in data["hook_scripts"]] == [
        ("HookScript.1", "reelscore_score"), ("HookScript.1", "reelscore_keys")]
    assert [(m["OTIO_SCHEMA"], m["name"]) for m in data["media_linkers"]] == [
        ("MediaLinker.1", "reelscore_relink")]
    # Attached to the standard hooks otioconvert runs before and after writing; no adapters.
    assert data["hooks"] == {"pre_adapter_write": ["reelscore_score"],
                             "post_adapter_write": ["reelscore_keys"]}
    assert "adapters" not in data and "schemadefs" not in data
    for entry in data["hook_scripts"] + data["media_linkers"]:
        path = PKG / entry["filepath"]
        assert path.is_file() and path.stem == entry["name"]
        # OTIO imports plugins as opentimelineio.adapters.<name> first: no builtin may shadow it.
        assert importlib.util.find_spec(f"opentimelineio.adapters.{entry['name']}") is None
        source = path.read_text("utf-8")
        assert "from ." not in source and "import reelscore" not in source.split("def ")[0]


def test_entry_point_points_at_the_package():
    eps = importlib.metadata.entry_points(group="opentimelineio.plugins")
    ours = [ep for ep in eps if ep.name == "reelscore"]
    assert [ep.value for ep in ours] == ["reelscore_otio"]
    assert Path(ours[0].load().__file__).parent == PKG


def test_otio_discovers_the_plugin_through_the_entry_point(discovered):
    assert (PKG / "plugin_manifest.json").as_posix() in discovered.source_files
    assert "reelscore_score" in otio.hooks.available_hookscript_names()
    assert list(otio.hooks.scripts_attached_to("pre_adapter_write")) == ["reelscore_score"]
    for hook in ("post_adapter_read", "post_media_linker", "post_adapter_write"):
        assert "reelscore_score" not in otio.hooks.scripts_attached_to(hook)
    # after the write: --duck's volume keys into an FCPX file (OTIO's writer has no place)
    assert list(otio.hooks.scripts_attached_to("post_adapter_write")) == ["reelscore_keys"]
    assert "reelscore_relink" in otio.media_linker.available_media_linker_names()
    assert otio.media_linker.from_name(otio.media_linker.MediaLinkingPolicy.ForceDefaultLinker) is None
    hook = next(h for h in discovered.hook_scripts if h.name == "reelscore_score")
    assert Path(hook.module_abs_path()) == PKG / "reelscore_score.py"
    assert list(inspect.signature(hook.module().hook_function).parameters) == [
        "in_timeline", "argument_map"]
    linker = otio.media_linker.from_name("reelscore_relink")
    assert list(inspect.signature(linker.module().link_media_reference).parameters) == [
        "in_clip", "media_linker_argument_map"]
    # Installing reelscore changes no adapter: every suffix still goes where it went.
    for suffix, name in (("otio", "otio_json"), ("otioz", "otioz"), ("edl", "cmx_3600"),
                         ("xml", "fcp_xml"), ("fcpxml", "fcpx_xml"), ("aaf", "AAF")):
        assert otio.adapters.from_filepath(f"cut.{suffix}").name == name


def test_otiopluginfo_lists_the_plugin():
    proc = subprocess.run([_exe("otiopluginfo")], capture_output=True, text=True, env=_env(),
                          timeout=120, check=True)
    out = proc.stdout
    assert str(PKG / "plugin_manifest.json") in out
    assert "reelscore_score" in out and "reelscore_relink" in out
    hooks = out[out.index("\nhooks:"):]
    assert "pre_adapter_write\n    reelscore_score" in hooks
    assert "post_adapter_write\n    reelscore_keys" in hooks


# --------------------------------------------------------------------------------- the hook


@pytest.mark.parametrize("args", [None, {}, {"_filepath": "/tmp/x.otio", "adapter_arguments": {}},
                                  {"reelscore": "on", "my.reelscore.key": 1, "Reelscore.provider": 1}])
def test_hook_is_a_strict_noop_without_reelscore_keys(discovered, args):
    tl = small_timeline(Path("/nowhere/a.mov"))
    assert otio.hooks.run("pre_adapter_write", tl, args) is tl


def test_writes_are_byte_identical_with_and_without_the_hook(discovered, tmp_path):
    tl = small_timeline(Path("/nowhere/a b.mov"))
    attached = otio.hooks.scripts_attached_to("pre_adapter_write")
    for ext in ("otio", "xml", "edl"):
        otio.adapters.write_to_file(tl, str(tmp_path / f"with.{ext}"),
                                    hook_function_argument_map={"other.tool": 1})
        attached.remove("reelscore_score")  # the live list: detach for one write
        try:
            otio.adapters.write_to_file(tl, str(tmp_path / f"without.{ext}"),
                                        hook_function_argument_map={"other.tool": 1})
        finally:
            attached.append("reelscore_score")
        assert (tmp_path / f"with.{ext}").read_bytes() == (tmp_path / f"without.{ext}").read_bytes()


def test_hook_without_arguments_imports_nothing_of_reelscore(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        import opentimelineio as otio
        tl = otio.schema.Timeline(name="t")
        tr = otio.schema.Track()
        tr.append(otio.schema.Gap(duration=otio.opentime.RationalTime(24, 24)))
        tl.tracks.append(tr)
        otio.adapters.write_to_file(tl, {str(tmp_path / 'out.otio')!r})
        hook = [h for h in otio.plugins.ActiveManifest().hook_scripts if h.name == "reelscore_score"]
        assert hook and hook[0]._module is not None, "the hook did not run"
        print(sorted(m for m in sys.modules if m == "reelscore" or m.startswith("reelscore.")))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=_env(), timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_hook_in_process_scores_an_otio_write(discovered, tmp_path, coded_video):
    media = coded_video(frames=500, rate=R, source_id=31, gop=50)
    tl = small_timeline(media)
    before = otio.adapters.write_to_string(tl)
    out = tmp_path / "scored.otio"
    otio.adapters.write_to_file(tl, str(out), hook_function_argument_map={
        "reelscore.provider": "local", "reelscore.work_dir": str(tmp_path / "job"),
        "reelscore.seed": 11, "reelscore.markers": True, "reelscore.min_scene": 1.0})
    assert otio.adapters.write_to_string(tl) == before  # the caller's timeline is untouched
    manifest = json.loads((tmp_path / "job" / "manifest.json").read_text())
    back = otio.adapters.read_from_file(str(out))
    assert [t.name for t in back.tracks] == ["V1", "Score"]
    clip = back.tracks[1][0]
    assert clip.metadata["reelscore"]["job_id"] == manifest["job_id"]
    assert clip.metadata["reelscore"]["seed"] == 11
    assert clip.media_reference.target_url == Path(manifest["outputs"]["music_wav"]).as_uri()
    assert rt_frames(clip.duration(), R) == 200 == manifest["plan"]["range"]["duration"]
    assert back.global_start_time.to_timecode() == "01:00:00:00"
    assert [m.name for m in clip.markers] == [f"Scene {i}" for i in range(1, 4)]


def test_hook_refuses_an_output_format_before_rendering(discovered, tmp_path, coded_video):
    """A 29.97 edit bound for .fcpxml (OTIO's FCPX writer takes 24/25/30/50/60 fps only): the
    hook says so after planning, before a clip is rendered or a request sent."""
    ntsc = Fraction(30000, 1001)
    media = coded_video(frames=300, rate=ntsc, source_id=32, gop=30)
    tl = build_timeline([[("clip", media, 32, 0, 150)]], ntsc, start_frame=107892)
    out = tmp_path / "scored.fcpxml"
    with pytest.raises(otio.exceptions.OTIOError, match="50 and 60 fps"):
        otio.adapters.write_to_file(tl, str(out), hook_function_argument_map={
            "reelscore.provider": "local", "reelscore.work_dir": str(tmp_path / "job")})
    assert not out.exists()
    assert not list((tmp_path / "job").glob("**/*.mp4"))


def _moved_edit(tmp_path: Path, coded_video) -> tuple[Path, Path, Path]:
    """An edit whose media were moved after it was cut: relinking needed."""
    src = coded_video(frames=500, rate=R, source_id=31, gop=50)
    original = tmp_path / "original media" / "shot A.mp4"
    moved = tmp_path / "moved media" / "deeper"
    moved.mkdir(parents=True)
    shutil.copy(src, moved / "shot A.mp4")
    edit = tmp_path / "cut.otio"
    otio.adapters.write_to_file(small_timeline(original), str(edit))
    return edit, moved.parent, moved / "shot A.mp4"


def test_otioconvert_relinks_and_scores_into_fcp7_xml(tmp_path, coded_video):
    edit, root, moved_file = _moved_edit(tmp_path, coded_video)
    out = tmp_path / "scored.xml"
    proc = subprocess.run(
        [_exe("otioconvert"), "-i", str(edit), "-o", str(out),
         "-m", "reelscore_relink", "-M", f"media_root={root}",
         "-H", "reelscore.provider=local", "-H", "reelscore.markers=True",
         "-H", "reelscore.seed=5", "-H", "reelscore.min_scene=1",
         "-H", "reelscore.range=01:00:01:00 01:00:07:00"],
        capture_output=True, text=True, env=_env(), timeout=300, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == ""  # the hook prints nothing
    job = tmp_path / "scored.xml.reelscore"
    manifest = json.loads((job / "manifest.json").read_text())
    plan = manifest["plan"]
    assert plan["range"]["record_in"] == "01:00:01:00" and plan["range"]["duration"] == 150
    wav = Path(manifest["outputs"]["music_wav"])
    assert wav.parent == job / "audio" and wav.is_file()

    back = read_written(out, "fcp_xml", R)
    loaded = normalise(back)
    audio = [c for t in back.audio_tracks() for c in t.find_clips()]
    assert len(audio) == 1
    clip = audio[0]
    assert clip.media_reference.target_url == media_url(wav, "fcp")  # file://localhost/...
    assert clip.media_reference.target_url.startswith("file://localhost/")
    record = loaded.start_frame + rt_frames(
        clip.transformed_time_range(clip.trimmed_range(), back.tracks).start_time, R)
    assert frames_to_tc(record, R) == "01:00:01:00"
    assert rt_frames(clip.duration(), R) == 150
    assert len(clip.markers) == len(plan["scenes"]) >= 2
    assert manifest["job_id"] in clip.metadata["fcp_xml"]["comments"]["mastercomment1"]
    # The linker relinked the picture: the XML's video clips point at the moved file.
    video = [c for t in back.video_tracks() for c in t.find_clips()]
    assert {c.media_reference.target_url for c in video} == {moved_file.as_uri()}


def test_otioconvert_writes_the_score_edl(tmp_path, coded_video):
    media = coded_video(frames=500, rate=R, source_id=31, gop=50)
    edit = tmp_path / "cut.otio"
    otio.adapters.write_to_file(small_timeline(media, start_frame=86400 * 25 // 24), str(edit))
    out = tmp_path / "score.edl"
    work = tmp_path / "job"
    proc = subprocess.run(
        [_exe("otioconvert"), "-i", str(edit), "-o", str(out), "-H", "reelscore.provider=local",
         "-H", f"reelscore.work_dir={work}", "-H", f"reelscore.source={edit}"],
        capture_output=True, text=True, env=_env(), timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((work / "manifest.json").read_text())
    assert manifest["input"]["path"] == str(edit)
    events = [ln.split() for ln in out.read_text().splitlines() if ln[:3].isdigit()]
    assert events == [["001", "AX", "A", "C", "00:00:00:00", "00:00:08:00",
                       "01:00:00:00", "01:00:08:00"]]
    assert f"* FROM CLIP: {manifest['outputs']['music_wav']}" in out.read_text()


def test_otioconvert_refuses_an_unknown_reelscore_key(tmp_path):
    edit = tmp_path / "cut.otio"
    otio.adapters.write_to_file(small_timeline(Path("/nowhere/a.mov")), str(edit))
    out = tmp_path / "out.otio"
    proc = subprocess.run([_exe("otioconvert"), "-i", str(edit), "-o", str(out),
                           "-H", "reelscore.provder=local"],
                          capture_output=True, text=True, env=_env(), timeout=120, check=False)
    assert proc.returncode != 0
    assert "unknown hook argument(s): reelscore.provder" in proc.stderr
    assert "reelscore.provider" in proc.stderr  # the hint lists the known keys
    assert not out.exists()


def test_otioconvert_without_reelscore_keys_converts_as_before(tmp_path):
    """Output with reelscore installed equals output with only OTIO and the FCP adapter."""
    edit = tmp_path / "cut.otio"
    otio.adapters.write_to_file(small_timeline(Path("/nowhere/a b.mov")), str(edit))
    fcp = importlib.util.find_spec("otio_fcp_adapter")
    assert fcp is not None and fcp.origin is not None
    only_fcp = _env(OTIO_DISABLE_ENTRYPOINTS_PLUGINS="1",
                    OTIO_PLUGIN_MANIFEST_PATH=str(Path(fcp.origin).parent / "plugin_manifest.json"))
    for ext in ("otio", "xml"):
        outs = []
        for name, env in (("with", _env()), ("without", only_fcp)):
            out = tmp_path / f"{name}.{ext}"
            subprocess.run([_exe("otioconvert"), "-i", str(edit), "-o", str(out),
                            "-H", "other.tool=1"], env=env, timeout=120, check=True,
                           capture_output=True)
            outs.append(out.read_bytes())
        assert outs[0] == outs[1]


# ------------------------------------------------------------------------- the media linker


def test_media_linker_relinks_by_name_keeping_the_url_form(discovered, tmp_path):
    root = tmp_path / "roots" / "a"
    root.mkdir(parents=True)
    other_root = tmp_path / "roots" / "b"
    other_root.mkdir()
    for name in ("moved url.mov", "moved path.mov"):
        (root / name).write_bytes(b"x")
    (other_root / "ZZ100_501").write_bytes(b"x")
    online = tmp_path / "online.mov"
    online.write_bytes(b"x")
    t = opentime.RationalTime
    rng = opentime.TimeRange(t(0, 24), t(10, 24))
    track = otio.schema.Track()
    refs = [
        otio.schema.ExternalReference("file:///old/place/moved%20url.mov", available_range=rng),
        otio.schema.ExternalReference("/old/place/moved path.mov", available_range=rng),
        otio.schema.MissingReference(),
        otio.schema.ExternalReference(online.as_uri(), available_range=rng),
        otio.schema.GeneratorReference(generator_kind="SMPTEBars", available_range=rng),
        otio.schema.ExternalReference("file:///old/place/nowhere.mov", available_range=rng),
    ]
    names = ["a", "b", "ZZ100_501", "d", "bars", "f"]
    for name, ref in zip(names, refs):
        track.append(otio.schema.Clip(name=name, media_reference=ref, source_range=rng))
    edit = tmp_path / "cut.otio"
    otio.adapters.write_to_file(otio.schema.Timeline(tracks=[track]), str(edit))

    roots = os.pathsep.join([str(root), str(other_root)])
    tl = otio.adapters.read_from_file(str(edit), media_linker_name="reelscore_relink",
                                      media_linker_argument_map={"media_root": roots})
    clips = {c.name: c.media_reference for c in tl.find_clips()}
    assert clips["a"].target_url == (root / "moved url.mov").as_uri()  # URL stays a URL
    assert clips["b"].target_url == str(root / "moved path.mov")  # a plain path stays plain
    assert clips["ZZ100_501"].target_url == (other_root / "ZZ100_501").as_uri()  # by clip name
    assert clips["a"].available_range == rng  # the media range survives relinking
    assert clips["a"].metadata["reelscore"]["relinked_from"] == "file:///old/place/moved%20url.mov"
    assert clips["d"].target_url == online.as_uri() and "reelscore" not in clips["d"].metadata
    assert isinstance(clips["bars"], otio.schema.GeneratorReference)
    assert clips["f"].target_url == "file:///old/place/nowhere.mov"  # not found: kept

    # A list of roots works too; without a media_root the linker changes nothing.
    tl2 = otio.adapters.read_from_file(str(edit), media_linker_name="reelscore_relink",
                                       media_linker_argument_map={"media_root": [str(root)]})
    assert tl2.find_clips()[0].media_reference.target_url == (root / "moved url.mov").as_uri()
    plain = otio.adapters.read_from_file(str(edit), media_linker_name="reelscore_relink")
    assert [type(c.media_reference).__name__ for c in plain.find_clips()] == [
        type(r).__name__ for r in refs]
    assert [getattr(c.media_reference, "target_url", None) for c in plain.find_clips()] == [
        getattr(r, "target_url", None) for r in refs]


def test_media_linker_with_a_bad_root_fails_clearly(discovered, tmp_path):
    edit = tmp_path / "cut.otio"
    otio.adapters.write_to_file(small_timeline(Path("/nowhere/a.mov")), str(edit))
    with pytest.raises(otio.exceptions.OTIOError, match="is not a folder"):
        otio.adapters.read_from_file(str(edit), media_linker_name="reelscore_relink",
                                     media_linker_argument_map={"media_root": str(tmp_path / "no")})


# ------------------------------------------------------------------- a fresh environment (CI)


@pytest.mark.slow
def test_fresh_venv_install_discovers_the_plugin(tmp_path):
    """pip install the repository (not editable) into a new venv: OTIO finds the plugin there."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    py = bindir / ("python.exe" if os.name == "nt" else "python")
    proc = subprocess.run([str(py), "-m", "pip", "install", "--quiet", str(ROOT)],
                          capture_output=True, text=True, timeout=1500, env=_env(), check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]

    info = subprocess.run([str(bindir / "otiopluginfo")], capture_output=True, text=True,
                          timeout=300, env=_env(), check=True).stdout
    manifest_line = next(ln.strip() for ln in info.splitlines()
                         if ln.strip().endswith("reelscore_otio/plugin_manifest.json"))
    assert Path(manifest_line).resolve().is_relative_to(venv.resolve())  # the installed copy
    assert "reelscore_score" in info and "reelscore_relink" in info

    snippet = textwrap.dedent("""
        import json, opentimelineio as otio
        m = otio.plugins.ActiveManifest()
        tl = otio.schema.Timeline(name="t")
        print(json.dumps({
            "hooks": list(otio.hooks.scripts_attached_to("pre_adapter_write")),
            "linkers": list(otio.media_linker.available_media_linker_names()),
            "noop": otio.hooks.run("pre_adapter_write", tl, {"_filepath": "x.otio"}) is tl,
            "sources": [s for s in m.source_files if "reelscore_otio" in s],
        }))
    """)
    run = subprocess.run([str(py), "-c", snippet], capture_output=True, text=True, timeout=300,
                         env=_env(), check=False, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout)
    assert got["hooks"] == ["reelscore_score"] and got["linkers"] == ["reelscore_relink"]
    assert got["noop"] is True
    assert len(got["sources"]) == 1 and Path(got["sources"][0]).resolve().is_relative_to(venv.resolve())
