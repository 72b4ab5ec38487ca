"""Acceptance (issue 17): the smoke benchmark with two real methods against a real ``mlflow server`` on
127.0.0.1; read back through the MLflow client that every nested run holds the pictures, that they
decode as PNGs of the size the layout gives, and that both methods drew the same fixed clips."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seqbench.cli import main
from seqbench.visuals import DEFAULT_CLIPS, GAP, fixed_clip_indices, strip, to_uint8

# The loopback server fixture of test_mlflow.py, imported by path (tests/ is not a package).
_spec = importlib.util.spec_from_file_location("_seqbench_test_mlflow", Path(__file__).with_name("test_mlflow.py"))
_test_mlflow = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_test_mlflow)
mlflow_server = _test_mlflow.mlflow_server

SIZE, FRAMES, SCALE = 32, 8, 2  # synthetic-sprites at 32 px, upscaled to 64 px per frame in the PNGs
METHODS = ("dbse", "spyl")


def expected_sizes(clips: int = DEFAULT_CLIPS) -> dict[str, tuple[int, int]]:
    """(width, height) of each picture from the layout: strips of FRAMES frames, GAP-pixel separators."""
    strip_w, h = FRAMES * SIZE, SIZE

    def grid(columns: int, rows: int, head_w: int = 0, head_h: int = 0) -> tuple[int, int]:
        width = (head_w + GAP if head_w else 0) + columns * strip_w + (columns - 1) * GAP
        height = (head_h + GAP if head_h else 0) + rows * h + (rows - 1) * GAP
        return width * SCALE, height * SCALE

    traversal = grid(1 + 5, 2 * 3)  # 2 clips x 3 components; the input then 5 alphas
    return {"recon.png": grid(1, 2 * clips), "swaps.png": grid(clips, clips, head_w=SIZE, head_h=SIZE),
            "samples-static.png": grid(clips, 1 + 3), "samples-dynamic.png": grid(clips, 1 + 3),
            "traversal-static.png": traversal, "traversal-dynamic.png": traversal}


@pytest.mark.slow
def test_smoke_benchmark_pictures_read_back_from_a_real_mlflow_server(cache_dir, tmp_path, mlflow_server, monkeypatch):
    from mlflow.tracking import MlflowClient

    from seqbench.datasets.synthetic_sprites import SyntheticSprites

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    assert main(["run", "--methods", ",".join(METHODS), "--metrics", "mse", "--profile", "smoke",
                 "--data-option", f"synthetic-sprites.size={SIZE}", "--no-progress", "-o", str(tmp_path / "out")]) == 0
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("seqbench")
    (parent,) = client.search_runs([experiment.experiment_id], filter_string="tags.`seqbench.run_id` != ''")
    children = client.search_runs([experiment.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(c.data.tags["seqbench.method"] for c in children) == sorted(METHODS)
    sizes = expected_sizes()
    pictures: dict[str, dict[str, np.ndarray]] = {}
    for child in children:
        method = child.data.tags["seqbench.method"]
        logged = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert logged == set(sizes), method  # at the root, where the run-comparison page looks
        local = tmp_path / "down" / method
        local.mkdir(parents=True)
        for name in sizes:
            client.download_artifacts(child.info.run_id, name, str(local))
        pictures[method] = {}
        for name, size in sizes.items():
            with Image.open(local / name) as image:
                assert image.format == "PNG" and image.size == size, (method, name, image.size)
                pictures[method][name] = np.asarray(image.convert("RGB"))
    # The same fixed test clips for both methods: the swap grid's margins and the reconstruction's input
    # rows are pixel-identical, and they are the dataset's test clips at fixed_clip_indices.
    test = SyntheticSprites(size=SIZE).split("test")
    clips = to_uint8(test.clips(fixed_clip_indices(len(test), DEFAULT_CLIPS)), (0.0, 1.0))
    top = pictures[METHODS[0]]["swaps.png"][:SIZE * SCALE]
    assert (top == pictures[METHODS[1]]["swaps.png"][:SIZE * SCALE]).all()
    for j in range(DEFAULT_CLIPS):
        left = (SIZE + GAP + j * (FRAMES * SIZE + GAP)) * SCALE
        real = np.repeat(np.repeat(strip(clips[j]), SCALE, axis=0), SCALE, axis=1)
        assert (top[:, left:left + FRAMES * SIZE * SCALE] == real).all(), f"column {j} is not fixed clip {j}"
    for i in range(DEFAULT_CLIPS):  # recon: clip i's input strip is row 2i
        rows = slice(2 * i * (SIZE + GAP) * SCALE, (2 * i * (SIZE + GAP) + SIZE) * SCALE)
        assert (pictures[METHODS[0]]["recon.png"][rows] == pictures[METHODS[1]]["recon.png"][rows]).all()
    # The methods differ where they should: the decoded cells.
    assert not (pictures[METHODS[0]]["swaps.png"] == pictures[METHODS[1]]["swaps.png"]).all()
    figures = {a.path for a in client.list_artifacts(parent.info.run_id, "figures")}
    assert figures == {"figures/synthetic-sprites-curves.png", "figures/synthetic-sprites-metrics.png"}
