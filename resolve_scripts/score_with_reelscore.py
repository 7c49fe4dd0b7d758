"""reelscore for DaVinci Resolve: Workspace > Scripts > Utility > "Score with reelscore".

This is the thin launcher that ``reelscore resolve install`` copies into Resolve's per-user
Scripts folder, with the four values below filled in from the Python environment reelscore was
installed in. It runs in whatever Python Resolve uses (3.6 or later, hence the plain syntax):

* same Python version as that environment: reelscore is imported from it in-process and the
  dialog runs against the ``resolve``/``fusion``/``bmd`` objects Resolve hands to menu scripts;
* another version (compiled dependencies would not load): the recorded interpreter runs
  ``python -m reelscore.resolve.dialog``, which connects back through the documented external
  scripting API (Studio, Preferences > System > General > External scripting using = Local).

Nothing here needs editing by hand; re-run ``reelscore resolve install`` after moving the
environment.
"""
# reelscore-launcher (this marker lets `reelscore resolve uninstall` recognise the file)

import os
import subprocess
import sys

REELSCORE_PYTHON = ""
REELSCORE_VERSION_INFO = ()
REELSCORE_SITE_DIRS = []
REELSCORE_PATHS = []


def _message(ns, text):
    """Show *text* in a small Resolve window (and the Console); fall back to printing."""
    print(text)
    fusion = ns.get("fusion") or ns.get("fu")
    bmd = ns.get("bmd")
    if fusion is None or bmd is None:
        return
    try:
        ui = fusion.UIManager
        disp = bmd.UIDispatcher(ui)
        win = disp.AddWindow(
            {"ID": "ReelscoreMessage", "WindowTitle": "reelscore", "Geometry": [200, 200, 560, 220]},
            ui.VGroup([
                ui.TextEdit({"ID": "Text", "ReadOnly": True, "PlainText": text}),
                ui.Button({"ID": "OK", "Text": "OK"}),
            ]),
        )

        def close(ev):
            disp.ExitLoop()

        win.On.OK.Clicked = close
        win.On.ReelscoreMessage.Close = close
        win.Show()
        disp.RunLoop()
        win.Hide()
    except Exception as exc:  # the message was printed; a broken UI must not hide it
        print(f"reelscore: could not open a window: {exc}")


def _in_process(ns):
    import site

    for d in REELSCORE_SITE_DIRS:
        site.addsitedir(d)  # also runs .pth files (editable installs)
    for p in reversed(REELSCORE_PATHS):
        if p not in sys.path:
            sys.path.insert(0, p)
    from reelscore.resolve.dialog import run_in_resolve

    return run_in_resolve(ns)


def _external(ns):
    cmd = [REELSCORE_PYTHON, "-m", "reelscore.resolve.dialog"]
    flags = 0x08000000 if os.name == "nt" else 0  # CREATE_NO_WINDOW: no stray console
    try:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, creationflags=flags
        )
    except OSError as exc:
        _message(ns, f"reelscore: cannot start {REELSCORE_PYTHON}: {exc}")
        return 2
    for line in proc.stdout:
        sys.stdout.write(line.decode("utf-8", "replace"))
    return proc.wait()


def main(ns):
    if not REELSCORE_PYTHON:
        _message(ns, "reelscore: this launcher was not installed by `reelscore resolve install`; "
                     "run that command in the environment where reelscore is installed.")
        return 2
    if not os.path.exists(REELSCORE_PYTHON):
        _message(ns, f"reelscore: the Python environment it was installed from is gone:\n  {REELSCORE_PYTHON}\n"
                     "Reinstall reelscore there (or elsewhere) and run `reelscore resolve install` "
                     "again.")
        return 2
    if tuple(sys.version_info[:2]) == tuple(REELSCORE_VERSION_INFO):
        try:
            return _in_process(ns)
        except ImportError as exc:
            print(f"reelscore: cannot import in Resolve's Python ({exc}); "
                  f"running {REELSCORE_PYTHON} instead")
    return _external(ns)


if __name__ != "reelscore_launcher_under_test":
    main(globals())
