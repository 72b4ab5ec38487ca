"""The command that trains again the model a board's rows name, for a swap grid once its cache is gone.

A committed board's swap figure is drawn from the cached model each method's rows name (its lowest seed),
or from the grid exported when one was (``seqbench leaderboard --grids``). When neither is at hand the
model has to be trained again, and it is only the rows' model if the code that trains it builds the rows'
``model_key`` (the key hashes the method's source, config, data and seed). For each method this prints:

* the rows' key and whether this checkout builds it from the rows' own command line (their ``run.json``
  argv, so ``--set`` overrides a row was made with are kept);
* if not, the commit the rows were made at (``git_sha``) and, with ``--worktrees DIR``, whether a worktree
  of that commit builds it (checked by a dry run of that commit's own code, the way the training would run);
* the command: training only (``--metrics mse --probes none --no-visuals``: the probes never touch the
  training RNG), whose MSE row must equal the committed one before the model's grid is exported.

Rows made from a tree with uncommitted changes (``-dirty``) can still match: the key check is what says
whether the commit reproduces them. Example::

    python benchmarks/row_models.py --rows leaderboards/results/synthetic-sprites --dataset synthetic-sprites \\
        --worktrees /tmp/row-worktrees
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

# flags of the rows' argv that the retraining command replaces (with their values)
_REPLACED = {"--methods": 1, "--seeds": 1, "--metrics": 1, "--output": 1, "--probes": 1, "--no-visuals": 0,
             "--no-progress": 0, "--retrain": 0, "--dry-run": 0}


def training_argv(argv: list[str], method: str, seed: int) -> list[str]:
    """The rows' ``seqbench`` argv for one model, as a training-only run."""
    kept, skip = [], 0
    for token in argv:
        if skip:
            skip -= 1
            continue
        flag = token.split("=", 1)[0]
        if flag in _REPLACED:
            skip = 0 if "=" in token else _REPLACED[flag]
            continue
        kept.append(token)
    return [*kept, "--methods", method, "--seeds", str(seed), "--metrics", "mse", "--probes", "none",
            "--no-visuals", "--no-progress"]


def key_built_here(argv: list[str], dataset: str, method: str, seed: int) -> str:
    """The model key this checkout's code builds for ``argv`` (a dry run's planning, nothing trained)."""
    from seqbench.cli import build_parser, run_options
    from seqbench.runner import Runner

    return Runner(run_options(build_parser().parse_args(argv))).unit(dataset, method, seed).model_key


def package_dirs(tree: Path) -> dict[str, str]:
    """``[tool.setuptools.package-dir]`` of the tree's pyproject: the packages an editable install maps."""
    import tomllib

    pyproject = tomllib.loads((tree / "pyproject.toml").read_text())
    return pyproject.get("tool", {}).get("setuptools", {}).get("package-dir", {})


def worktree_at(root: Path, repo: Path, sha: str) -> Path:
    """A detached worktree of ``sha`` under ``root`` whose ``seqbench`` package imports from its own files."""
    tree = root / sha[:12]
    if not tree.exists():
        root.mkdir(parents=True, exist_ok=True)
        # a worktree whose folder was deleted (a wiped /tmp) stays registered until pruned
        subprocess.run(["git", "-C", str(repo), "worktree", "prune"], check=True, capture_output=True, text=True)
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), sha], check=True,
                       capture_output=True, text=True)
    # the editable install maps seqbench.methods -> methods/ etc. to *this* checkout; in the worktree the
    # same packages are linked inside seqbench/ so that PYTHONPATH=<tree> imports all of them from the commit
    for package, folder in package_dirs(tree).items():
        parts = package.split(".")
        if len(parts) == 2 and parts[0] == "seqbench":
            link = tree / "seqbench" / parts[1]
            if not link.exists():
                link.symlink_to(Path("..") / folder)
    return tree


def key_built_at(tree: Path, argv: list[str], dataset: str, method: str, seed: int) -> str | None:
    """The model key the worktree's own code builds (its ``--dry-run`` output), or ``None``."""
    done = subprocess.run([sys.executable, "-m", "seqbench", *argv, "--dry-run"], cwd=tree, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(tree)})
    match = re.search(rf"{re.escape(dataset)}/{re.escape(method)}/seed{seed}:.*\[([0-9a-f]+)\]", done.stdout)
    return match.group(1) if match else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", required=True, help="a leaderboard's rows: leaderboards/results/<dataset>")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--methods", default="", help="comma-separated; default: every method of the rows")
    parser.add_argument("--seed", type=int, default=None, help="default: each method's lowest seed")
    parser.add_argument("--worktrees", type=Path, default=None,
                        help="check (and create) worktrees of the rows' commits here when this checkout builds "
                             "another key")
    args = parser.parse_args(argv)

    from seqbench.leaderboard import results_frame, select_rows
    from seqbench.results import load_results
    from seqbench.runner import cached_model_dir

    rows = select_rows(results_frame(load_results(args.rows)), args.dataset, None)
    repo = Path(__file__).resolve().parent.parent
    methods = [m for m in args.methods.split(",") if m] or sorted(rows["method"].unique())
    for method in methods:
        own = rows[rows["method"] == method]
        if own.empty:
            print(f"{method}: no rows for {args.dataset} in {args.rows}")
            continue
        seed = int(own["seed"].min()) if args.seed is None else args.seed
        mine = own[own["seed"] == seed]
        if mine.empty:
            print(f"{method}: no rows of seed {seed}")
            continue
        key, run_id = str(mine["model_key"].iloc[0]), str(mine["run_id"].iloc[0])
        record = next(Path(args.rows).glob(f"**/{run_id}/run.json"), None)
        if record is None:
            print(f"{method} seed {seed}: the run record {run_id}/run.json is not under {args.rows}")
            continue
        run = json.loads(record.read_text())
        given = list(run["argv"])
        command_argv = training_argv(given[1:] if given[:1] == ["run"] else given, method, seed)
        cached = (cached_model_dir(method, key) / "model.pt").is_file()
        here = key_built_here(["run", *command_argv], args.dataset, method, seed)
        print(f"\n{method} seed {seed}: rows' model {key}" + (" (in this cache)" if cached else ""))
        command = "seqbench " + shlex.join(["run", *command_argv])
        if here == key:
            print(f"  this checkout builds it:\n    {command}")
            continue
        sha = str(run["git_sha"]).removesuffix("-dirty")
        dirty = str(run["git_sha"]).endswith("-dirty")
        print(f"  this checkout builds {here}; the rows were made at {sha[:12]}" + (" (a dirty tree)" if dirty else ""))
        if args.worktrees is None:
            print("  (--worktrees DIR checks whether that commit builds the rows' key)")
            continue
        tree = worktree_at(args.worktrees, repo, sha)
        there = key_built_at(tree, ["run", *command_argv], args.dataset, method, seed)
        if there == key:
            print(f"  the commit builds it (worktree {tree}):\n    cd {tree} && PYTHONPATH={tree} python -m {command}")
        else:
            print(f"  the commit builds {there}, not the rows' key: this model cannot be trained again from the "
                  f"repository (the rows' tree had uncommitted changes)")


if __name__ == "__main__":
    main()
