"""The Workspace > Scripts dialog (Resolve's UIManager), its progress display and summary.

``run_in_resolve(globals())`` is what the installed launcher calls inside Resolve;
``python -m reelscore.resolve.dialog`` is the same dialog run from the recorded environment over
the external scripting connection (when Resolve's Python cannot import reelscore).

The dialog asks for what an editor changes per run: scene policy, description, tags, provider,
the provider's base URL (the proxy route, data residency), loudness preset and target, range
(whole timeline or in/out marks), render route and scene markers, and for ``--method compose``
the method, a reviewed composition plan file, a per-scene brief file and ``--draft-plan``;
when the timeline already carries a reelscore score (:mod:`reelscore.resolve.previous`),
whether to update that score for this version of the cut (``--previous``). Its fields start at the values of
the configuration files (``reelscore.config``; ``$REELSCORE_CONFIG`` and ``$REELSCORE_PROFILE``
choose a file and a profile), and every other setting comes from those files; the settings are
built by the same function as every front end (``reelscore.settings.build_settings``).

Scoring runs inside the Score button's handler; Resolve's own UI stays responsive (menu scripts
are a separate process) and every status update is a property set that Resolve repaints at once.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from reelscore.config import (
    DEFAULT_LOUDNESS,
    LOUDNESS_PRESETS,
    EffectiveConfig,
    LoudnessPreset,
    load_config,
)
from reelscore.errors import InputError, ReelscoreError
from reelscore.limits import MAX_TAGS
from reelscore.providers import PROVIDER_NAMES
from reelscore.resolve.api import ResolveError
from reelscore.resolve.connect import ResolveSession, connect
from reelscore.resolve.reader import parse_rate_setting
from reelscore.scenes import ScenePolicy
from reelscore.timecode import rate_label

if TYPE_CHECKING:
    from reelscore.resolve.workflow import RenderRoute
    from reelscore.settings import BuiltSettings

log = logging.getLogger(__name__)

WINDOW_ID = "ReelscoreWindow"
POLICIES: tuple[ScenePolicy, ...] = get_args(ScenePolicy)
PRESETS: tuple[LoudnessPreset, ...] = get_args(LoudnessPreset)
RANGES = ("Whole timeline", "In/out marks")
RENDERS = ("Resolve render queue (grades, titles, effects)", "ffmpeg from the source media (faster)")
RENDER_KEYS = ("resolve", "ffmpeg")
METHODS = ("video", "compose")  # --method: video-to-music from clips, or a plan from the cut


@dataclass(frozen=True)
class DialogValues:
    scenes: ScenePolicy = "cuts"
    description: str = ""
    tags: tuple[str, ...] = ()
    provider: str = "local"
    target_lufs: float | None = None  # None: the loudness preset's target
    use_marks: bool = False
    render: RenderRoute = "resolve"
    markers: bool = False
    base_url: str = ""
    loudness: LoudnessPreset = DEFAULT_LOUDNESS
    # issue 14: the job of the reelscore score already on the timeline ("" = none), and whether
    # to update that score for this version of the cut instead of scoring afresh
    previous: str = ""
    update_previous: bool = False
    # --method compose (issue 13): the method, a reviewed plan file, a per-scene brief, drafting
    method: str = "video"
    composition: str = ""
    brief: str = ""
    draft_plan: bool = False
    # --duck (issue 15): duck the score under the dialogue tracks
    duck: bool = False
    duck_depth: float = -10.0
    dialogue_track: tuple[str, ...] = ()
    use_audio_as_reference: bool = False  # the clips carry the timeline's sound

    @property
    def shown_lufs(self) -> float:
        return self.target_lufs if self.target_lufs is not None else LOUDNESS_PRESETS[self.loudness][0]


def dialog_defaults(config: EffectiveConfig) -> DialogValues:
    """The dialog's starting values: the configuration's, else the built-in defaults."""
    from reelscore.providers.select import pick_provider

    v = config.values()
    preset = v.get("loudness", DEFAULT_LOUDNESS)
    lufs = v.get("target_lufs")
    return DialogValues(
        scenes=v.get("scenes", "cuts"), description=v.get("description", ""),
        tags=tuple(v.get("tags", ())),
        provider=pick_provider(v["provider"]) if "provider" in v else "local",
        target_lufs=None if lufs is None or lufs == LOUDNESS_PRESETS[preset][0] else float(lufs),
        markers=bool(v.get("markers", False)), base_url=v.get("base_url", ""), loudness=preset,
        method=v.get("method", "video"), draft_plan=bool(v.get("draft_plan", False)),
        duck=bool(v.get("duck", False)), duck_depth=float(v.get("duck_depth", -10.0)),
        dialogue_track=tuple(v.get("dialogue_track", ())),
        use_audio_as_reference=bool(v.get("use_audio_as_reference", False)))


def _combo(ui: Any, element_id: str, items: tuple[str, ...], current: str) -> Any:
    box = ui.ComboBox({"ID": element_id})
    for text in items:
        box.AddItem(text)
    box.CurrentIndex = items.index(current) if current in items else 0
    return box


def _row(ui: Any, label: str, widget: Any) -> Any:
    return ui.HGroup({"Weight": 0}, [ui.Label({"Text": label, "Weight": 0.25}), widget])


def build_dialog(ui: Any, disp: Any, *, header: str, defaults: DialogValues | None = None,
                 providers: tuple[str, ...] = PROVIDER_NAMES) -> Any:
    """Create the window (not shown). Element IDs are what :func:`read_values` reads."""
    d = defaults or DialogValues()
    content = ui.VGroup({"Spacing": 6}, [
        ui.Label({"ID": "Header", "Text": header, "Weight": 0, "WordWrap": True}),
        _row(ui, "Scenes", _combo(ui, "Scenes", POLICIES, d.scenes)),
        _row(ui, "Description", ui.TextEdit({"ID": "Description", "PlainText": d.description,
                                             "PlaceholderText": "brief for the music (optional)"})),
        _row(ui, "Tags", ui.LineEdit({"ID": "Tags", "Text": ", ".join(d.tags),
                                      "PlaceholderText": "comma-separated, up to 10"})),
        _row(ui, "Provider", _combo(ui, "Provider", providers, d.provider)),
        _row(ui, "Base URL", ui.LineEdit({"ID": "BaseUrl", "Text": d.base_url,
                                          "PlaceholderText": "service or proxy host (mountsea: "
                                          "required; elevenlabs: optional)"})),
        _row(ui, "Loudness spec", _combo(ui, "LoudnessPreset", PRESETS, d.loudness)),
        _row(ui, "Loudness (LUFS)", ui.SpinBox({"ID": "Loudness", "Minimum": -40, "Maximum": -5,
                                                "Value": round(d.shown_lufs)})),
        _row(ui, "Range", _combo(ui, "Range", RANGES, RANGES[1] if d.use_marks else RANGES[0])),
        _row(ui, "Render", _combo(ui, "Render", RENDERS, RENDERS[RENDER_KEYS.index(d.render)])),
        ui.CheckBox({"ID": "Markers", "Text": "Add a marker at each scene", "Checked": d.markers,
                     "Weight": 0}),
        *_previous_rows(ui, d),
        _row(ui, "Method", _combo(ui, "Method", METHODS, d.method)),
        _row(ui, "Composition plan", ui.LineEdit({
            "ID": "Composition", "Text": d.composition,
            "PlaceholderText": "compose: a reviewed plan file (reelscore plan --composition)"})),
        _row(ui, "Brief", ui.LineEdit({"ID": "Brief", "Text": d.brief, "PlaceholderText":
                                       "compose: per-scene brief file, CSV or TOML (optional)"})),
        ui.CheckBox({"ID": "DraftPlan", "Text": "Draft the styles with the service's free plan "
                     "endpoint (compose)", "Checked": d.draft_plan, "Weight": 0}),
        ui.CheckBox({"ID": "Duck", "Text": "Duck the score under dialogue (unducked kept, "
                     "muted)", "Checked": d.duck, "Weight": 0}),
        _row(ui, "Duck depth (dB)", ui.SpinBox({"ID": "DuckDepth", "Minimum": -40, "Maximum": -1,
                                                "Value": round(d.duck_depth)})),
        _row(ui, "Dialogue tracks", ui.LineEdit({
            "ID": "DialogueTracks", "Text": ", ".join(d.dialogue_track),
            "PlaceholderText": "names, comma-separated (default: DIA, DX, Dialogue, VO)"})),
        ui.CheckBox({"ID": "HearSound", "Text": "Let the service hear the timeline's sound "
                     "(clips sent with their audio)", "Checked": d.use_audio_as_reference,
                     "Weight": 0}),
        ui.Label({"ID": "Status", "Text": "Ready.", "Weight": 0}),
        ui.TextEdit({"ID": "Log", "ReadOnly": True, "PlainText": ""}),
        ui.HGroup({"Weight": 0}, [
            ui.Button({"ID": "Score", "Text": "Score"}),
            ui.Button({"ID": "Close", "Text": "Close"}),
        ]),
    ])
    return disp.AddWindow(
        {"ID": WINDOW_ID, "WindowTitle": "reelscore - score this timeline",
         "Geometry": [200, 150, 620, 760]},
        content,
    )


def _previous_rows(ui: Any, d: DialogValues) -> list[Any]:
    """Offered only when the timeline already carries a reelscore score (resolve.previous)."""
    if not d.previous:
        return []
    return [ui.CheckBox({"ID": "UpdatePrevious", "Checked": d.update_previous, "Weight": 0,
                         "Text": "Update the score from the previous version (keep its music "
                                 "where the picture did not change; generate only the new "
                                 "stretches)"}),
            ui.Label({"ID": "PreviousJob", "Text": d.previous, "Weight": 0, "WordWrap": True})]


def read_values(win: Any) -> DialogValues:
    """What the user chose; InputError for values the run would refuse."""
    items = win.GetItems()
    tags = tuple(t.strip() for t in str(items["Tags"].Text or "").split(",") if t.strip())
    if len(tags) > MAX_TAGS:
        raise InputError(f"{len(tags)} tags given; the service takes at most {MAX_TAGS}",
                         hint="remove some tags")
    render_text = str(items["Render"].CurrentText)
    scenes = str(items["Scenes"].CurrentText)
    preset = str(items["LoudnessPreset"].CurrentText)
    loudness = PRESETS[PRESETS.index(preset)] if preset in PRESETS else DEFAULT_LOUDNESS
    lufs = float(items["Loudness"].Value)
    return DialogValues(
        scenes=POLICIES[POLICIES.index(scenes)] if scenes in POLICIES else "cuts",
        description=str(items["Description"].PlainText or "").strip(),
        tags=tags,
        provider=str(items["Provider"].CurrentText) or "local",
        # The spin box shows the preset's target: only a changed number overrides the preset.
        target_lufs=None if lufs == LOUDNESS_PRESETS[loudness][0] else lufs,
        use_marks=str(items["Range"].CurrentText) == RANGES[1],
        render="ffmpeg" if render_text == RENDERS[1] else "resolve",
        markers=bool(items["Markers"].Checked),
        base_url=str(items["BaseUrl"].Text or "").strip(),
        loudness=loudness,
        previous=str(items["PreviousJob"].Text) if "PreviousJob" in items else "",
        update_previous=bool(items["UpdatePrevious"].Checked) if "UpdatePrevious" in items
        else False,
        method=str(items["Method"].CurrentText) if items["Method"].CurrentText in METHODS
        else "video",
        composition=str(items["Composition"].Text or "").strip(),
        brief=str(items["Brief"].Text or "").strip(),
        draft_plan=bool(items["DraftPlan"].Checked),
        duck=bool(items["Duck"].Checked),
        duck_depth=float(items["DuckDepth"].Value),
        dialogue_track=tuple(t.strip() for t in str(items["DialogueTracks"].Text or "").split(",")
                             if t.strip()),
        use_audio_as_reference=bool(items["HearSound"].Checked),
    )


class DialogProgress:
    """ProgressSink writing to the dialog's Status label and Log box."""

    def __init__(self, win: Any) -> None:
        self.items = win.GetItems()
        self.totals: dict[str, float | None] = {}
        self.done: dict[str, float] = {}
        self.lines: list[str] = []

    def _status(self, name: str) -> None:
        total = self.totals.get(name)
        done = self.done.get(name, 0)
        unit = " frames" if name == "render" else ""
        text = f"{name}: {done:g}/{total:g}{unit}" if total else f"{name}..."
        self.items["Status"].Text = text

    def stage(self, name: str, total: float | None = None) -> None:
        self.totals[name] = total
        self.done.setdefault(name, 0)
        self._status(name)

    def advance(self, name: str, amount: float = 1) -> None:
        self.done[name] = self.done.get(name, 0) + amount
        self._status(name)

    def note(self, message: str) -> None:
        self.log(message)

    def request_state(self, request_id: str, state: str) -> None:
        self.items["Status"].Text = f"{request_id}: {state}"

    def log(self, message: str) -> None:
        self.lines.append(message)
        self.items["Log"].PlainText = "\n".join(self.lines)


Runner = Callable[[ResolveSession, DialogValues, DialogProgress], list[str]]


def built_settings(values: DialogValues, config: EffectiveConfig | None = None) -> BuiltSettings:
    """The run's settings: the configuration, then the fields the user changed from the values
    the dialog opened with (which are the configuration's), so an untouched field never hides a
    profile's or file's finer setting."""
    from reelscore.settings import build_settings, front_end_values

    config = config or load_config()
    start = dialog_defaults(config)
    changed = {name: getattr(values, name) for name in _SETTING_FIELDS
               if getattr(values, name) != getattr(start, name)}
    if "tags" in changed:
        changed["tags"] = list(values.tags)
    if "description" in changed:
        changed["description"] = values.description or None
    if "dialogue_track" in changed:
        changed["dialogue_track"] = list(values.dialogue_track)
    if changed.get("base_url") == "":
        changed["base_url"] = None
    if values.update_previous and values.previous:
        changed["previous"] = values.previous
    for name in ("composition", "brief"):  # file fields: typed paths, empty = not given
        if name in changed:
            changed[name] = Path(changed[name]).expanduser() if changed[name] else None
    return build_settings(config, front_end_values("dialog", **changed), origin="dialog",
                          default_provider="local")


_SETTING_FIELDS = ("scenes", "description", "tags", "provider", "target_lufs", "markers",
                   "base_url", "loudness", "method", "composition", "brief", "draft_plan",
                   "duck", "duck_depth", "dialogue_track",
                   "use_audio_as_reference")


def default_runner(session: ResolveSession, values: DialogValues, progress: DialogProgress) -> list[str]:
    from reelscore.resolve.workflow import ResolveRunOptions, score_in_resolve

    built = built_settings(values)
    options = ResolveRunOptions(use_marks=values.use_marks, render=values.render)
    run = score_in_resolve(session, built.settings, options,
                           provider_config=built.provider_config, progress=progress)
    return run.summary_lines()


def header_for(session: ResolveSession) -> str:
    """One line about what will be scored (raises ResolveError if there is nothing to score)."""
    project = session.project()
    timeline = session.timeline(project)
    rate_text = timeline.probe("GetSetting", "timelineFrameRate") or project.probe(
        "GetSetting", "timelineFrameRate")
    try:
        rate = rate_label(parse_rate_setting(rate_text)[0])
    except ReelscoreError:
        rate = "?"
    return (f"{timeline.label} in project {project.probe('GetName')!r}: {rate} fps, starts "
            f"{timeline.probe('GetStartTimecode') or '?'} ({session.product} "
            f"{session.version_string})")


def run_dialog(
    session: ResolveSession,
    ui: Any,
    disp: Any,
    *,
    runner: Runner = default_runner,
    defaults: DialogValues | None = None,
) -> Any:
    """Build the dialog, wire its events and run its loop; returns the window (for tests)."""
    from reelscore.resolve.previous import previous_score_job

    header = header_for(session)
    defaults = defaults or dialog_defaults(load_config())
    previous = previous_score_job(session.timeline(session.project()))
    if previous is not None:
        defaults = replace(defaults, previous=str(previous))
    win = build_dialog(ui, disp, header=header, defaults=defaults)
    items = win.GetItems()
    progress_box: list[DialogProgress] = []

    def on_score(ev: Any) -> None:
        progress = DialogProgress(win)
        progress_box.append(progress)
        items["Score"].Enabled = False
        items["Close"].Enabled = False
        try:
            values = read_values(win)
            progress.log(f"scoring with {values.provider}, scenes by {values.scenes}, "
                         f"{'in/out marks' if values.use_marks else 'whole timeline'}, "
                         f"render by {values.render} ...")
            summary = runner(session, values, progress)
            items["Status"].Text = "Done: the music is on its new track."
            for line in summary:
                progress.log(line)
        except ReelscoreError as exc:
            items["Status"].Text = "Stopped: " + exc.message.splitlines()[0]
            progress.log(f"error: {exc}")
        except Exception as exc:  # keep the dialog alive and say what broke
            log.exception("reelscore dialog")
            items["Status"].Text = f"Stopped by an internal error: {type(exc).__name__}"
            progress.log(f"internal error: {type(exc).__name__}: {exc} (please report it)")
        finally:
            items["Score"].Enabled = True
            items["Close"].Enabled = True

    def on_close(ev: Any) -> None:
        disp.ExitLoop()

    win.On.Score.Clicked = on_score
    win.On.Close.Clicked = on_close
    getattr(win.On, WINDOW_ID).Close = on_close  # the window's own close box
    win.Show()
    disp.RunLoop()
    win.Hide()
    return win


def _show_error(ui: Any, disp: Any, text: str) -> None:
    win = disp.AddWindow(
        {"ID": "ReelscoreError", "WindowTitle": "reelscore", "Geometry": [200, 200, 600, 260]},
        ui.VGroup([ui.TextEdit({"ID": "Text", "ReadOnly": True, "PlainText": text}),
                   ui.Button({"ID": "OK", "Text": "OK"})]),
    )

    def close(ev: Any) -> None:
        disp.ExitLoop()

    win.On.OK.Clicked = close
    win.Show()
    disp.RunLoop()
    win.Hide()


def _ui_of(session: ResolveSession | None, ns: Mapping[str, Any]) -> tuple[Any, Any] | None:
    fusion = (session.fusion if session else None) or ns.get("fusion") or ns.get("fu")
    bmd = (session.bmd if session else None) or ns.get("bmd")
    if fusion is None or bmd is None:
        return None
    try:
        ui = fusion.UIManager
        return ui, bmd.UIDispatcher(ui)
    except Exception:  # an external connection may not offer UIManager
        return None


def run_in_resolve(ns: Mapping[str, Any], *, runner: Runner = default_runner) -> int:
    """Entry point for the menu script: *ns* is its globals (resolve, fusion, bmd)."""
    logging.basicConfig(level=logging.INFO, format="reelscore %(levelname)s: %(message)s")
    session: ResolveSession | None = None
    ui_disp: tuple[Any, Any] | None = None
    try:
        session = connect(ns)
        ui_disp = _ui_of(session, ns)
        if ui_disp is None:
            raise ResolveError(
                "Resolve did not give this script a UIManager (fusion/bmd), so no dialog can open",
                hint="run `reelscore resolve score` in a terminal instead",
            )
        run_dialog(session, *ui_disp, runner=runner)
        return 0
    except ReelscoreError as exc:
        text = f"reelscore: {exc}"
        print(text)
        ui_disp = ui_disp or _ui_of(session, ns)
        if ui_disp is not None:
            _show_error(*ui_disp, text)
        return exc.exit_code


def main() -> int:
    """``python -m reelscore.resolve.dialog``: the dialog over an external connection."""
    return run_in_resolve({})


if __name__ == "__main__":  # pragma: no cover - exercised through the launcher
    sys.exit(main())
