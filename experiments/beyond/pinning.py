"""One misclassified training image pins its class's readout: measured at every snapshot of a sweep
run, and checked by training on without it.

    python -m experiments.beyond.pinning runs/sweep/<run> [<run> ...] [--out DIR]
    python -m experiments.beyond.pinning runs/sweep/<run> --at E --drop I [I ...]
        --epochs E1 [E2 ...] [--control] [--out DIR]

The report, for every snapshot of each run and of every continuation of it in --out: the training
images the network classifies wrong (index in the training split ``data["train"]``, label, predicted
class, logit gap z_k - z_y); for each class k, its median own-class logit z_k over its correctly
classified training images, beside z* = ``analysis.masking.readout.pinned_logit`` for the classes
that misclassified images are predicted as (a sigmoid readout's penalty only; the weight of one
readout unit ``nn.penalty.unit_weight``, n_k the class's training images); and each class's median
test margin (first --n-test test images). Writes <out>/pinning.json and pinning.md, and with the
``plots`` extra pinning.png: one class's own-class logit and test margin against epochs, one line
per run folder, z* and 2 z* dashed (--plot-class, default the class with the lowest own-class logit
at the first run's last snapshot).

The intervention (--at E --drop I --epochs ...): a sweep run keeps only its last training state, so
the run's recipe is trained again from scratch to epoch E into <out>/<run>-e<E>/; that training
state (parameters, Adam's moments, the shuffling generator) then continues without training images I
into <out>/<run>-e<E>-drop<I>/, to each --epochs, a snapshot at each
(``experiments.lib.intervention``). --control leaves out as many other images of each of their
labels instead, drawn at random (seeded by the run's seed) from the correctly classified ones, in
<out>/<run>-e<E>-control<I>/: the same change to the data's size (both reshuffle the remaining
images from then on), other images. The retrained state must equal the run's snapshot at E bit for
bit where there is one (UsageError otherwise: another BLAS kernel or thread count rounds otherwise).
The same command continues either where it stopped.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from analysis.masking.readout import pinning_report
from experiments.lib.cli import UsageError, add_common_args, cli, count, parse, summary
from experiments.lib.drawing_beyond import draw_pinning
from experiments.lib.runs import Run, write_json
from experiments.lib.intervention import (DROPPED, continue_run, drop_continuations, fork,
                                          retrained_base, sweep_source, trained_indices)
from experiments.lib.plotting import save_figure
from experiments.lib.recipes import readout_weight
from experiments.lib.store import INTERVENTION
from experiments.lib.sweep_report import snapshots
from nn.checkpoint import load_checkpoint
from nn.mnist import load_mnist

# misclassified training images listed per snapshot in the table (the JSON keeps them all)
LISTED = 8
MAX_DROP = 10  # training images one intervention may leave out (each one names its folder)


def table(rows):
    """Markdown: one line per snapshot; per class the median own-class training logit, with the
    pinned logit z* in brackets where images are misclassified as that class, and the median test
    margin."""
    K = len(rows[0]["z_correct_by_class"])
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    lines = ["| run | epoch | misclassified training images (index: label -> predicted, gap) | "
             + " | ".join(f"class {k}: z_k (z*) / test margin" for k in range(K)) + " |",
             "| --- | --- | --- |" + " --- |" * K]
    for r in rows:
        w = r["misclassified"]
        listed = ", ".join(f"{i}: {a} -> {b}, {g:.1f}"
                           + (" (left out)" if i in r["dropped"] else "") for i, a, b, g in
                           list(zip(w["index"], w["label"], w["predicted"], w["gap"]))[:LISTED])
        more = len(w["index"]) - LISTED
        cells = [fmt(r["z_correct_by_class"][k])
                 + (f" ({r['pinned_logit'][k]:.2f})" if r["pinned_logit"][k] else "")
                 + f" / {fmt(r['margin_by_class_test'][k])}" for k in range(K)]
        lines.append(f"| {r['run']} | {r['epoch']} | "
                     f"{listed or 'none'}{f' and {more} more' if more > 0 else ''} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    """Measure the pinning at every snapshot of the runs and of their continuations in --out, after
    the intervention where one is asked for; write pinning.json, pinning.md and pinning.png. -> the
    rows, one per snapshot."""
    parser = add_common_args(argparse.ArgumentParser(description=summary(__doc__)))
    parser.add_argument("runs", nargs="+", help="sweep run folders (runs/sweep/<run>)")
    parser.add_argument("--at", type=count,
                        help="the epoch to intervene at (with --drop and --epochs)")
    parser.add_argument("--drop", type=int, nargs="+",
                        help=f"training-split indices to train on without (at most {MAX_DROP})")
    parser.add_argument("--epochs", type=count, nargs="+",
                        help="continue to these epochs, a snapshot at each")
    parser.add_argument("--control", action="store_true",
                        help="leave out as many random correctly classified images of the same "
                             "labels instead")
    parser.add_argument("--n-test", type=count, default=10000,
                        help="test images for the margins (default 10000)")
    parser.add_argument("--plot-class", type=int, help="the class pinning.png follows (default: "
                                                       "the first run's lowest)")
    args = parse(parser, argv)
    intervene = [args.at is not None, bool(args.drop), bool(args.epochs)]
    if any(intervene) and not all(intervene):
        raise UsageError("an intervention needs --at, --drop and --epochs together")
    if args.control and not args.drop:
        raise UsageError("--control is the control of a --drop intervention; give --at, "
                         "--drop and --epochs")
    if args.drop and len(args.runs) != 1:
        raise UsageError(f"an intervention continues one run; {len(args.runs)} given")
    if args.drop and len(set(args.drop)) > MAX_DROP:
        raise UsageError(f"--drop: at most {MAX_DROP} images")
    if args.epochs and min(args.epochs) <= args.at:
        raise UsageError(f"--epochs must lie after --at {args.at}")
    sources = [(Path(f), *sweep_source(f, max(args.epochs or [1]))) for f in args.runs]
    for folder, _, _ in sources:
        if not snapshots(folder):
            raise UsageError(f"{folder}: no snap-e<epoch>.npz snapshots there (python -m "
                             "experiments.beyond.sweep makes them)")
    out = Run("pinning", args)  # default folder runs/pinning
    data = load_mnist(args.data_dir)
    x_train, y_train = data["train"]
    if args.drop:
        source, run, seed = sources[0]
        trained = trained_indices(len(x_train), run.recipe.train["max_train"], None)
        if not np.isin(args.drop, trained).all():
            raise UsageError("--drop: the run trains on training-split indices "
                             f"0..{len(trained) - 1}")
    if args.plot_class is not None and not 0 <= args.plot_class <= y_train.max():
        raise UsageError(f"--plot-class {args.plot_class}: no such class (0..{y_train.max()})")
    x_test, y_test = (a[:args.n_test] for a in data["test"])
    if args.drop:
        base, retrained = retrained_base(run, seed, source, args.at, out, data, out.log)
        dest = fork(run, seed, base, retrained, sorted(set(args.drop)), args.control,
                    out, data, out.log)
        continue_run(run, seed, dest, sorted(set(args.epochs)), data, x_test[:2000], y_test[:2000],
                     out.xp, out.log)
    rows = []
    for source, run, seed in sources:
        for folder in [source, *drop_continuations(out.dir, run.name)]:
            for snap in snapshots(folder):
                model, meta = load_checkpoint(snap, out.xp)
                record = meta.get(INTERVENTION) or {}
                trained = trained_indices(len(x_train), run.recipe.train["max_train"], record)
                # steps so far, about
                step = meta["epoch"] * -(-len(trained) // run.recipe.train["batch_size"])
                weight = readout_weight(run.recipe, model.params[-1]["b"].shape[0], step)
                rows.append({"run": folder.name, "epoch": meta["epoch"], "intervention": record,
                             **pinning_report(model, weight, x_train, y_train, trained,
                                              record.get(DROPPED, ()), x_test, y_test)})
                out.log(f"{folder.name} epoch {meta['epoch']}: "
                        f"{len(rows[-1]['misclassified']['index'])} training images misclassified")
    write_json(out.path("pinning.json"), {"n_test": len(x_test), "rows": rows})
    out.path("pinning.md").write_text(table(rows))
    out.log("\n" + table(rows))
    last = [r for r in rows if r["run"] == sources[0][0].name][-1]["z_correct_by_class"]
    k = (args.plot_class if args.plot_class is not None
         else int(np.nanargmin([np.nan if v is None else v for v in last])))
    save_figure(out.path("pinning.png"),
                lambda axes: draw_pinning(axes, rows, k, sources[0][0].name), shape=(1, 2),
                figsize=(14, 4))
    return rows


if __name__ == "__main__":
    cli(main)
