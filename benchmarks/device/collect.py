"""Copy every cached model's meta.json/history.json out of a seqbench cache, for the device scripts.

A model whose training was cut short has no history.json yet: its learning curve so far is read from
the trainer's checkpoint.pt and written as history.partial.json.

    python benchmarks/device/collect.py CACHE DEST
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path


def main(cache: Path, dest: Path) -> None:
    import torch

    for folder in sorted((cache / "models").glob("*/*/")):
        out = dest / "models" / f"{folder.parent.name}-{folder.name}"
        out.mkdir(parents=True, exist_ok=True)
        for path in folder.glob("*.json"):
            shutil.copy(path, out / path.name)
        if not (folder / "history.json").exists() and (folder / "checkpoint.pt").exists():
            state = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=False)
            (out / "history.partial.json").write_text(json.dumps(state.get("history", []), default=float))
            print(folder, "partial history, step", state.get("step"))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
