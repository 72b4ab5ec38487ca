"""The prepared-folder life cycle every dataset adapter shares (seqbench.prepared_folder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqbench.prepared_folder import building_folder, file_sha256, folder_complete, verify_folder


def _write_complete(folder: Path, who: str) -> None:
    (folder / "x.bin").write_bytes(who.encode())
    meta = {"files": ["x.bin"], "who": who, "sha256": {"x.bin": file_sha256(folder / "x.bin")},
            "skipped": [{"path": "src/bad.mp4", "reason": "truncated"}]}
    (folder / "meta.json").write_text(json.dumps(meta))


def _who(folder: Path) -> str:
    return json.loads((folder / "meta.json").read_text())["who"]


def test_a_built_folder_replaces_the_previous_one_and_leaves_nothing_beside_it(tmp_path):
    target = tmp_path / "v1"
    for who in ("first", "second"):
        with building_folder(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".v1.tmp-") and not any(tmp.iterdir())
            _write_complete(tmp, who)
    assert _who(target) == "second" and folder_complete(target)
    assert [p.name for p in tmp_path.iterdir()] == ["v1"]


def test_a_failed_build_keeps_the_previous_folder(tmp_path):
    target = tmp_path / "v1"
    with building_folder(target) as tmp:
        _write_complete(tmp, "good")
    with pytest.raises(RuntimeError, match="decoder crashed"):
        with building_folder(target) as tmp:
            (tmp / "x.bin").write_bytes(b"half")
            raise RuntimeError("decoder crashed")
    assert _who(target) == "good" and [p.name for p in tmp_path.iterdir()] == ["v1"]


def test_keep_complete_lets_a_concurrent_winner_stand(tmp_path):
    target = tmp_path / "v1"
    with building_folder(target, keep_complete=True) as tmp:
        target.mkdir()
        _write_complete(target, "winner")  # another process finished the same data first
        _write_complete(tmp, "loser")
    assert _who(target) == "winner" and [p.name for p in tmp_path.iterdir()] == ["v1"]


def test_completion_marker_and_verification(tmp_path):
    target = tmp_path / "v1"
    target.mkdir()
    (target / "meta.json").write_text(json.dumps({"files": ["x.bin"]}))
    assert not folder_complete(target)  # a listed file is missing
    _write_complete(target, "data")
    assert folder_complete(target)
    assert verify_folder(target) == ["src/bad.mp4: skipped when prepared: truncated"]
    (target / "x.bin").write_bytes(b"changed")
    assert verify_folder(target)[0].endswith("x.bin: content changed since it was prepared (sha256 mismatch; "
                                              "prepare again)")
