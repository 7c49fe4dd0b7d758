"""The seams of ``reelscore batch``: service slots across threads and processes, and jobs files."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

import pytest

from reelscore.batch_jobs import items_from_edits, items_from_jobs
from reelscore.errors import InputError
from reelscore.settings import FrontEndValues
from reelscore.slots import FileSlots, ThreadSlots


@pytest.mark.parametrize("kind", ["thread", "file"])
def test_slots_bound_the_threads_that_hold_them(tmp_path, kind):
    slots = ThreadSlots(2) if kind == "thread" else FileSlots(tmp_path / "slots", 2)
    lock = threading.Lock()
    now, peak = [0], [0]

    def hold() -> None:
        with slots.hold():
            with lock:
                now[0] += 1
                peak[0] = max(peak[0], now[0])
            time.sleep(0.05)
            with lock:
                now[0] -= 1

    threads = [threading.Thread(target=hold) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert peak[0] == 2 and now[0] == 0


def _hold_forever(directory: str, ready: multiprocessing.synchronize.Event) -> None:
    with FileSlots(Path(directory), 1).hold():
        ready.set()
        time.sleep(60)


def test_a_killed_process_frees_its_slot(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    child = ctx.Process(target=_hold_forever, args=(str(tmp_path), ready))
    child.start()
    try:
        assert ready.wait(30)
        got = threading.Event()

        def take() -> None:
            with FileSlots(tmp_path, 1).hold():
                got.set()

        taker = threading.Thread(target=take, daemon=True)
        taker.start()
        assert not got.wait(0.5), "the slot is held by the other process"
        child.kill()
        assert got.wait(10), "the dead process's slot was released by the OS"
    finally:
        child.kill()
        child.join(10)


def test_items_from_edits_are_named_after_the_edit_in_its_own_format(tmp_path):
    items = items_from_edits([tmp_path / "a" / "ep01.edl", tmp_path / "ep02.otio"], tmp_path / "out")
    assert [i.output for i in items] == [tmp_path / "out" / "ep01.scored.edl",
                                         tmp_path / "out" / "ep02.scored.otio"]
    assert items[0].work_dir == tmp_path / "out" / "ep01.scored.edl.reelscore"


def test_two_edits_with_one_name_are_refused(tmp_path):
    with pytest.raises(InputError, match=r"a/ep01.otio and .*b/ep01.otio would both write"):
        items_from_edits([tmp_path / "a" / "ep01.otio", tmp_path / "b" / "ep01.otio"], tmp_path)


def test_jobs_csv_rows_carry_their_settings(tmp_path):
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("edit,description,tags,target_lufs\n"
                    "ep01.otio,tense strings,dark;slow,-23\n"
                    "ep02.otio,,,\n", "utf-8")
    one, two = items_from_jobs(jobs, tmp_path / "out")
    assert one.edit == tmp_path / "ep01.otio" and one.row == "jobs.csv row 2"
    assert one.overrides == {"description": "tense strings", "tags": ["dark", "slow"],
                             "target_lufs": -23.0}
    assert two.overrides == {}
    shared = FrontEndValues(description="from the flag", workers=2)
    merged = one.values(shared)
    assert merged.description == "tense strings" and merged.workers == 2
    assert two.values(shared).description == "from the flag"


def test_jobs_file_errors_name_the_row_and_column(tmp_path):
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("edit,colour\nep01.otio,red\n", "utf-8")
    with pytest.raises(InputError, match=r"jobs.csv header: unknown column 'colour'"):
        items_from_jobs(jobs, tmp_path)
    jobs.write_text("edit,scheduler\nep01.otio,tcp://h:8786\n", "utf-8")  # batch-wide only
    with pytest.raises(InputError, match=r"jobs.csv header: unknown column 'scheduler'"):
        items_from_jobs(jobs, tmp_path)
    jobs.write_text("edit,output\nep01.otio,x.otio\nep02.otio,x.otio\n", "utf-8")
    with pytest.raises(InputError, match=r"jobs.csv row 2 and jobs.csv row 3 would both write"):
        items_from_jobs(jobs, tmp_path)
    jobs.write_text("edit,target_lufs\nep01.otio,loud\n", "utf-8")
    with pytest.raises(InputError, match=r"jobs.csv row 2, column 'target_lufs': 'loud'"):
        items_from_jobs(jobs, tmp_path)
    toml = tmp_path / "jobs.toml"
    toml.write_text('[[job]]\nedit = "ep01.otio"\n\n[[job]]\nedit = "ep02.otio"\nmood = 1\n',
                    "utf-8")
    with pytest.raises(InputError, match=r"jobs.toml job 2: unknown column 'mood'"):
        items_from_jobs(toml, tmp_path)
    toml.write_text('[[job]]\nedit = "ep01.otio"\noutput = "sub/one.otio"\ntags = ["a"]\n',
                    "utf-8")
    (item,) = items_from_jobs(toml, tmp_path / "out")
    assert item.output == tmp_path / "out" / "sub" / "one.otio" and item.overrides == {"tags": ["a"]}
