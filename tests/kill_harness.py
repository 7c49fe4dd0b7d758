"""Run the real ``reelscore`` CLI, pausing at one chosen step, so a test can SIGKILL it there.

    python -m tests.kill_harness STEP MARKER score INPUT -o OUTPUT ...

When the run reaches STEP it creates the file MARKER and sleeps; the test waits for the marker and
kills the process with SIGKILL at exactly that point. The pause points are patched in here, in the
test helper: reelscore itself has no test hooks. STEP is one of:

``render``     while the second clip is being encoded (the first one is finished and recorded;
               a temporary clip file exists in clips/)
``upload``     in the middle of the request body (the service has part of the upload)
``download``   after the first bytes of the answer were written to the temporary download file
``normalise``  after the score WAV's temporary file was written, before it is moved into place
``write``      after the scored edit's temporary file was written, before it is moved into place
``none``       no pause (the test kills the run from outside, e.g. while the service generates)
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PAUSE_S = 120.0


def _pause(marker: Path) -> None:
    marker.write_text("paused")
    time.sleep(PAUSE_S)
    raise SystemExit("kill_harness: the test did not kill the run")


def install(step: str, marker: Path) -> None:
    if step == "render":
        from reelscore import render

        original_runs = render.render_runs
        calls = {"n": 0}

        def render_runs(runs: Any, encode: Any, out_path: Path, **kw: Any) -> int:
            calls["n"] += 1
            if calls["n"] < 2:
                return original_runs(runs, encode, out_path, **kw)
            inner = kw.get("on_frames")

            def on_frames(n: int) -> None:
                if inner is not None:
                    inner(n)
                _pause(marker)

            kw["on_frames"] = on_frames
            return original_runs(runs, encode, out_path, **kw)

        render.render_runs = render_runs  # type: ignore[assignment]
    elif step == "upload":
        from reelscore.providers import elevenlabs

        original_iter = elevenlabs.MultipartBody.__iter__

        def body_iter(self: Any) -> Iterator[bytes]:
            for chunk in original_iter(self):
                yield chunk
                if self.sent > self.length // 2 and not self.done:
                    _pause(marker)

        elevenlabs.MultipartBody.__iter__ = body_iter  # type: ignore[method-assign]
    elif step == "download":
        from reelscore.providers import elevenlabs

        def stream_response_to_file(response: Any, fh: Any, record: Any, **_kw: Any) -> int:
            for chunk in response.iter_bytes():
                fh.write(chunk[: max(1, len(chunk) // 2)])
                fh.flush()
                _pause(marker)
            return 0

        elevenlabs.stream_response_to_file = stream_response_to_file  # type: ignore[assignment]
    elif step == "normalise":
        from reelscore import wavfile

        original_write = wavfile.write_wav_to

        def write_wav_to(path: Any, *args: Any, **kw: Any) -> Any:
            result = original_write(path, *args, **kw)
            if ".score." in Path(path).name:
                _pause(marker)
            return result

        wavfile.write_wav_to = write_wav_to  # type: ignore[assignment]
    elif step == "write":
        from reelscore.writeback import write as writeback

        original_atomic = writeback.atomic_output

        @contextlib.contextmanager
        def atomic_output(path: Any, **kw: Any) -> Iterator[Path]:
            with original_atomic(path, **kw) as tmp:
                yield tmp
                _pause(marker)

        writeback.atomic_output = atomic_output  # type: ignore[assignment]
    elif step != "none":
        raise SystemExit(f"kill_harness: unknown step {step!r}")


def main(argv: list[str]) -> None:
    step, marker, *cli_args = argv
    install(step, Path(marker))
    sys.argv = ["reelscore", *cli_args]  # what the run reports as its resume command
    from reelscore.cli import app

    app(args=cli_args, prog_name="reelscore")


if __name__ == "__main__":
    main(sys.argv[1:])
