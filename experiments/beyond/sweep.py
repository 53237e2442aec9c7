"""The saturated-regime sweep: train a grid of saturated networks by the paper's method (eqs. 6-8,
Adam, no adversarial examples) and measure where their FGSM robustness comes from.

    python -m experiments.beyond.sweep                # the sigmoid-MLP grid (--grid relu, cnn, all)
    python -m experiments.beyond.sweep --jobs 2       # two runs at a time, one core each
    python -m experiments.beyond.sweep --list         # one command per run, for a scheduler
    python -m experiments.beyond.sweep --run <name>   # one run of the grid
    python -m experiments.beyond.sweep --report       # table and figures from what is there now
    python -m experiments.beyond.sweep --quick        # the CI smoke grid, seconds

Each run (``experiments.lib.grids``) trains in its own folder, runs/sweep/<run name>/, through
``experiments.lib.store``: the same command, run again after an interruption, continues every
unfinished run where it stopped, and a run whose epochs were raised continues from its last epoch.
At each milestone epoch (25, 50, 100, ... and the last) the parameters are kept as snap-e<epoch>.npz
and evaluated on the first --n-test test images (``experiments.lib.evaluation``, with the regime's
measurements) into eval-e<epoch>.json beside it. The report (``experiments.lib.sweep_report``) goes
to table.md, summary.md, table.json, sweep.png and mechanism.png in the sweep folder.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from experiments.lib.cli import (UsageError, add_common_args, add_pool_args, cli, summary,
                                 parse, count)
from experiments.lib.runs import FileLog, Run, run_dir, write_json
from experiments.lib.evaluation import evaluate_snapshot
from experiments.lib.grids import GRIDS, MILESTONES
from experiments.lib.jobs import command, run_all
from experiments.lib.recipes import model_key
from experiments.lib.store import RECIPE_FILE, stored_key, train_or_load
from experiments.lib.sweep_report import report, snapshots
from nn.backend import get_xp
from nn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nn.mnist import load_mnist

def _every(line, k):
    """True for the progress lines of every k-th epoch (and resume notes): keeps logs of long runs
    short."""
    try:
        return int(line.split()[2].split("/")[0]) % k == 0
    except (IndexError, ValueError):
        return True


def train_run(task):
    """Train (or continue) one run to its epochs, keeping a snapshot at every milestone, evaluated
    at once. task: {"run": SweepRun, "root", "data_dir", "device", "n_test", "batch"} (plain data,
    so that a process pool can run it). -> the run's folder."""
    run, root = task["run"], Path(task["root"])
    folder = root / run.name
    folder.mkdir(parents=True, exist_ok=True)
    file_log = FileLog(root / "log.txt")

    def log(line):  # every 25th epoch's progress line, and every other line
        if "epoch" not in line or _every(line, 25):
            file_log(line)

    xp, data = get_xp(task["device"]), load_mnist(task["data_dir"])
    x, y = data["test"][0][:task["n_test"]], data["test"][1][:task["n_test"]]
    write_json(folder / RECIPE_FILE, {"recipe": run.recipe.as_dict(), "seed": run.seed,
                                      "settings": run.settings})
    seconds = _seconds_so_far(folder / "train.npz", model_key(run.recipe, run.seed))

    def after_epoch(m, rec):
        nonlocal seconds
        seconds += rec["seconds"]
        if rec["epoch"] in MILESTONES or rec["epoch"] == run.recipe.epochs:
            snap = folder / f"snap-e{rec['epoch']}.npz"
            save_checkpoint(snap, m, recipe=run.recipe.as_dict(), seed=run.seed, epoch=rec["epoch"],
                            train_seconds=seconds, complete=True)  # a whole model at its epoch
            evaluate_snapshot(snap, x, y, xp, log, task["batch"])

    train_or_load(run.recipe, run.seed, folder / "train.npz", data, xp, log, label=run.name,
                  checkpoint_every=25, checkpoint_seconds=600, after_epoch=after_epoch)
    return folder


def _seconds_so_far(path, key):
    """Training seconds the run's checkpoint records (its history), 0 if it holds another model or
    none."""
    try:
        meta = load_checkpoint(path)[1]
    except CheckpointError:
        return 0.0
    return (sum(h.get("seconds", 0.0) for h in meta.get("history", []))
            if stored_key(meta) == key else 0.0)


def main(argv=None):
    """Train the grid's runs (with --list only print one command per run), evaluate their snapshots
    and write the sweep's report. -> the report's rows (``experiments.lib.sweep_report.report``; []
    with --list)."""
    parser = add_common_args(argparse.ArgumentParser(description=summary(__doc__)))
    parser.add_argument("--grid", choices=sorted(GRIDS), default="sigmoid")
    parser.add_argument("--run", dest="runs", action="append", default=[],
                        help="train only this run (repeatable)")
    parser.add_argument("--report", action="store_true",
                        help="only (re)evaluate snapshots and write the report")
    add_pool_args(parser, "runs", "run")
    parser.add_argument("--n-test", type=count, default=2000,
                        help="test images per evaluation (default 2000)")
    parser.add_argument("--batch", type=count, default=500)
    args = parse(parser, argv)
    grid = GRIDS["quick" if args.quick else args.grid]
    unknown = set(args.runs) - {r.name for r in grid}
    if unknown:
        raise UsageError(f"--run: no run {', '.join(sorted(unknown))} in the grid {args.grid}; "
                         f"`python -m experiments.beyond.sweep --grid {args.grid} "
                         "--list` lists them")
    runs = [r for r in grid if not args.runs or r.name in args.runs]
    if args.list:  # commands only, on stdout: nothing is run or logged
        opts = ["--out", run_dir("sweep", args).resolve(), "--n-test", args.n_test, "--batch",
                args.batch, *(["--quick"] if args.quick else ["--grid", args.grid])]
        for r in runs:
            print(command("sweep", "--run", r.name, *opts, data_dir=args.data_dir))
        return []
    sweep = Run("sweep", args)
    if not args.report:
        tasks = [{"run": r, "root": str(sweep.dir), "data_dir": args.data_dir,
                  "device": sweep.device, "n_test": args.n_test, "batch": args.batch} for r in runs]
        run_all(train_run, tasks, args.jobs)
    data = load_mnist(args.data_dir)
    x, y = data["test"][0][:args.n_test], data["test"][1][:args.n_test]
    for folder in sorted(p for p in Path(sweep.dir).glob("*/") if (p / RECIPE_FILE).exists()):
        for snap in snapshots(folder):  # those not evaluated yet, or by an older EVAL_VERSION
            evaluate_snapshot(snap, x, y, get_xp(sweep.device), sweep.log, args.batch)
    return report(sweep.dir, sweep.log)


if __name__ == "__main__":
    cli(main)
