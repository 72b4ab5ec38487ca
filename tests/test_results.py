"""The results log: append-only, one line per row, readable after a kill -9 at any moment."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from seqbench.errors import SeqbenchError
from seqbench.results import COLUMNS, append_rows, load_results, read_rows


def _row(i: int, payload: int = 0) -> dict:
    row = {column: None for column in COLUMNS}
    row.update({"run_id": "r", "dataset": "d", "method": "m", "seed": i, "metric": "mse", "key": "mse",
                "value": i / 7, "status": "ok"})
    if payload:
        row["reason"] = "x" * payload
    return row


def test_rows_are_appended_one_line_each_and_round_trip(tmp_path):
    path = tmp_path / "out" / "results.jsonl"
    append_rows(path, [_row(0), _row(1)])
    append_rows(path, [])
    append_rows(path, [{**_row(2), "value": math.inf}])
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["seed"] == i for i, line in enumerate(lines))
    frame = load_results(path)
    assert frame["seed"].tolist() == [0, 1, 2] and frame["value"].iloc[2] == math.inf


def test_appending_never_rewrites_what_is_there(tmp_path):
    path = tmp_path / "results.jsonl"
    append_rows(path, [_row(0)])
    inode, first = path.stat().st_ino, path.read_bytes()
    append_rows(path, [_row(1)])
    assert path.stat().st_ino == inode and path.read_bytes().startswith(first)


def test_a_torn_last_line_is_skipped_with_a_warning_then_removed_by_the_next_append(tmp_path, caplog):
    path = tmp_path / "results.jsonl"
    append_rows(path, [_row(0), _row(1)])
    with open(path, "ab") as fh:
        fh.write(json.dumps(_row(2)).encode()[:40])  # a write killed half-way
    with caplog.at_level(logging.WARNING, logger="seqbench.results"):
        assert [row["seed"] for row in read_rows(path)] == [0, 1]
    assert "torn last line" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="seqbench.results"):
        append_rows(path, [_row(3)])
    assert "removing a torn last line (40 bytes)" in caplog.text
    assert [row["seed"] for row in read_rows(path)] == [0, 1, 3]
    assert path.read_text().endswith("\n") and len(path.read_text().splitlines()) == 3


def test_a_complete_last_row_without_its_newline_is_kept(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(_row(0)) + "\n" + json.dumps(_row(1)))  # e.g. written by hand
    append_rows(path, [_row(2)])
    assert [row["seed"] for row in read_rows(path)] == [0, 1, 2]


def test_a_broken_line_inside_the_file_is_still_an_error(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(_row(0)) + "\n{not json\n" + json.dumps(_row(1)) + "\n")
    with pytest.raises(SeqbenchError, match=r"results.jsonl:2: not valid JSON"):
        read_rows(path)


_APPEND_FOREVER = textwrap.dedent("""
    import sys
    from seqbench.results import COLUMNS, append_rows
    path, payload = sys.argv[1], int(sys.argv[2])
    i = 0
    while True:
        row = dict.fromkeys(COLUMNS)
        row.update(seed=i, reason="x" * payload, status="ok")
        append_rows(path, [row])
        i += 1
""")


@pytest.mark.parametrize("payload", [100, 4 << 20])
def test_kill_9_while_appending_leaves_every_complete_row_loadable(tmp_path, payload):
    """Small rows: killed between or inside appends. 4 MiB rows: killed while the file is seen to
    end inside a row, i.e. mid-write (the kernel stops a write between pages on SIGKILL)."""
    path = tmp_path / "results.jsonl"
    line = len(json.dumps({**dict.fromkeys(COLUMNS), "seed": 0, "reason": "x" * payload, "status": "ok"})) + 1
    big = payload > 1 << 20

    def time_to_kill(size: int) -> bool:  # lines 0..9 are `line` bytes each
        return size >= 2 * line and size % line != 0 if big else size >= 50 * line

    writer = subprocess.Popen([sys.executable, "-c", _APPEND_FOREVER, str(path), str(payload)])
    try:
        deadline = time.monotonic() + 60
        while not (path.exists() and time_to_kill(path.stat().st_size)):
            assert writer.poll() is None, "the writer died on its own"
            assert time.monotonic() < deadline, "the writer wrote too little in 60 s"
            time.sleep(0 if big else 0.01)
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    complete = path.read_bytes().count(b"\n")  # + 1 if the kill came exactly before a newline
    loaded = len(load_results(path))
    assert complete >= 2 and loaded in (complete, complete + 1)
    assert load_results(path)["seed"].tolist() == list(range(loaded))
    append_rows(path, [{**dict.fromkeys(COLUMNS), "seed": loaded}])  # the next run goes on from there
    assert load_results(path)["seed"].tolist() == list(range(loaded + 1))
