"""One misclassified training image pins its class's readout: measured at every snapshot of a sweep run,
and checked by training on without it.

    python -m experiments.beyond.pinning runs/sweep/<run> [<run> ...] [--out DIR]
    python -m experiments.beyond.pinning runs/sweep/<run> --at E --drop I [I ...] --epochs E1 [E2 ...] [--control] [--out DIR]

The report, for every snapshot of each run and of every continuation of it in --out: the training
images the network classifies wrong (index in the training split ``data["train"]``, label, predicted
class, logit gap z_k - z_y); for each class k, its median own-class logit z_k over its correctly
classified training images, beside z* = ``analysis.masking.readout.pinned_logit`` for the classes that
misclassified images are predicted as (a sigmoid readout's penalty only; the weight of one readout
unit ``nn.penalty.unit_weight``, n_k the class's training images); and each class's median test margin
(first --n-test test images). Writes <out>/pinning.json and pinning.md, and with the ``plots`` extra
pinning.png: one class's own-class logit and test margin against epochs, one line per run folder, z*
and 2 z* dashed (--plot-class, default the class with the lowest own-class logit at the first run's
last snapshot).

The intervention (--at E --drop I --epochs ...): a sweep run keeps only its last training state, so the
run's recipe is trained again from scratch to epoch E into <out>/<run>-e<E>/; that training state
(parameters, Adam's moments, the shuffling generator) then continues without training images I into
<out>/<run>-e<E>-drop<I>/, to each --epochs, a snapshot at each (``experiments.lib.intervention``).
--control leaves out as many other images of each of their labels instead, drawn at random (seeded by
the run's seed) from the correctly classified ones, in <out>/<run>-e<E>-control<I>/: the same change to
the data's size (both reshuffle the remaining images from then on), other images. The retrained state
must equal the run's snapshot at E bit for bit where there is one (UsageError otherwise: another BLAS
kernel or thread count rounds otherwise). The same command continues either where it stopped.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from analysis.masking.readout import misclassified, pinning_report
from experiments.lib.cli import UsageError, add_common_args, cli, count, parse, summary
from experiments.lib.runs import Run, write_json
from experiments.lib.intervention import DROPPED, continue_run, save_intervened, sweep_source, trained_indices
from experiments.lib.plotting import save_figure
from experiments.lib.store import INTERVENTION, train_or_load
from experiments.lib.sweep_report import snapshots
from nn.backend import to_host
from nn.checkpoint import load_checkpoint
from nn.mnist import load_mnist
from nn.penalty import lambda_schedule, unit_weight
from nn.train import resume_state

LISTED = 8  # misclassified training images listed per snapshot in the table (the JSON keeps them all)
MAX_DROP = 10  # training images one intervention may leave out (each one names its folder)


def readout_weight(recipe, n_classes, step):
    """One readout unit's penalty weight relative to one example's cross-entropy at training step
    ``step`` (``nn.penalty.unit_weight`` with lambda from ``nn.penalty.lambda_schedule``) for a recipe
    whose readout carries the sigma' penalty; None for any other."""
    if recipe.readout_penalty != "sigmoid":
        return None
    m = recipe.method
    lam = lambda_schedule(step, m["lam_max"], m["lam_step"])
    return unit_weight(lam, n_classes, recipe.train["batch_size"], m["units"], m["batch"]) if lam > 0 else None


def retrained_base(run, seed, source, at, out, data, log):
    """The run's training state at epoch ``at``: its recipe trained again from scratch into
    <out>/<run>-e<at>/train.npz (resumable), compared bit for bit with the run's snap-e<at>.npz.
    -> (path, what the comparison found, a sentence for the record). Raises UsageError when the
    retrained model differs from the snapshot (another BLAS kernel or thread count rounds otherwise):
    the continuation would not continue the run it is compared with."""
    base = out.dir / f"{run.name}-e{at}"
    base.mkdir(exist_ok=True)
    recipe = run.recipe.replace("train", epochs=at)
    model, _ = train_or_load(recipe, seed, base / "train.npz", data, out.xp, log, checkpoint_every=25,
                             checkpoint_seconds=600)
    snap = source / f"snap-e{at}.npz"
    if not snap.exists():
        found = f"no snapshot {snap} to compare the retrained state with"
    else:
        theirs = load_checkpoint(snap, out.xp)[0]
        if not all(np.array_equal(to_host(a[k]), to_host(b[k])) for a, b in zip(model.params, theirs.params) for k in a):
            raise UsageError(f"{base}/train.npz, the recipe trained again to epoch {at}, differs from {snap} "
                             "(another BLAS kernel, thread count or device rounds otherwise); intervene where it was trained")
        found = f"equal bit for bit to {snap}"
    log(f"{base.name}: retrained to epoch {at}, {found}")
    return base / "train.npz", found


def fork(run, seed, base_ckpt, retrained, drop, control, out, data, log):
    """The training state ``base_ckpt`` (epoch E) copied with its intervention record: training images
    ``drop`` left out, in <out>/<run>-e<E>-drop<I>/; with ``control``, as many other images of each of
    their labels, correctly classified and drawn at random (seeded by the run's seed), in
    <out>/<run>-e<E>-control<I>/. -> the folder (an existing one is reused, nothing drawn again).
    Raises UsageError when the state cannot be read or a label has too few images to draw."""
    resumed = resume_state(base_ckpt, run.recipe.config(seed), out.xp)
    if resumed is None:
        raise UsageError(f"{base_ckpt} holds no training state of the recipe {run.name}")
    model, state, meta = resumed
    dest = out.dir / f"{run.name}-e{state.epoch}-{'control' if control else 'drop'}{'-'.join(map(str, drop))}"
    if (dest / "train.npz").exists():
        return dest
    x, y = data["train"]
    trained = trained_indices(len(x), run.recipe.train["max_train"], None)
    left_out = list(drop)
    if control:
        wrong = misclassified(model, x[trained], y[trained])["index"]
        rng, left_out = np.random.default_rng(seed), []
        for label in sorted(set(y[drop].tolist())):
            pool = np.setdiff1d(trained[y[trained] == label], np.concatenate([trained[wrong], drop]))  # right, not in drop
            need = int((y[drop] == label).sum())
            if len(pool) < need:
                raise UsageError(f"--control: only {len(pool)} other correctly classified images of label {label}")
            left_out += rng.choice(pool, size=need, replace=False).tolist()
        left_out.sort()
    dest.mkdir(exist_ok=True)
    record = {DROPPED: left_out, "labels": y[left_out].tolist(), "at_epoch": state.epoch, "source": str(base_ckpt),
              "retrained": retrained, **({"control_for": list(drop)} if control else {})}
    save_intervened(dest / "train.npz", model, state.adam, meta, record)
    log(f"{dest.name}: training images {left_out} (labels {record['labels']}) left out from epoch {state.epoch}"
        + (f", the control for {list(drop)}" if control else ""))
    return dest


def continuations(out, name):
    """The folders in ``out`` that continue run ``name`` without some training images, by name."""
    pattern = re.compile(re.escape(name) + r"-e\d+-(drop|control)[\d-]+")
    return [p for p in sorted(Path(out).iterdir()) if pattern.fullmatch(p.name) and snapshots(p)]


def table(rows):
    """Markdown: one line per snapshot; per class the median own-class training logit, with the pinned
    logit z* in brackets where images are misclassified as that class, and the median test margin."""
    K = len(rows[0]["z_correct_by_class"])
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    lines = ["| run | epoch | misclassified training images (index: label -> predicted, gap) | "
             + " | ".join(f"class {k}: z_k (z*) / test margin" for k in range(K)) + " |",
             "| --- | --- | --- |" + " --- |" * K]
    for r in rows:
        w = r["misclassified"]
        listed = ", ".join(f"{i}: {a} -> {b}, {g:.1f}" + (" (left out)" if i in r["dropped"] else "") for i, a, b, g in
                           list(zip(w["index"], w["label"], w["predicted"], w["gap"]))[:LISTED])
        more = len(w["index"]) - LISTED
        cells = [fmt(r["z_correct_by_class"][k]) + (f" ({r['pinned_logit'][k]:.2f})" if r["pinned_logit"][k] else "")
                 + f" / {fmt(r['margin_by_class_test'][k])}" for k in range(K)]
        lines.append(f"| {r['run']} | {r['epoch']} | {listed or 'none'}{f' and {more} more' if more > 0 else ''} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = add_common_args(argparse.ArgumentParser(description=summary(__doc__)))
    parser.add_argument("runs", nargs="+", help="sweep run folders (runs/sweep/<run>)")
    parser.add_argument("--at", type=count, help="the epoch to intervene at (with --drop and --epochs)")
    parser.add_argument("--drop", type=int, nargs="+", help=f"training-split indices to train on without (at most {MAX_DROP})")
    parser.add_argument("--epochs", type=count, nargs="+", help="continue to these epochs, a snapshot at each")
    parser.add_argument("--control", action="store_true",
                        help="leave out as many random correctly classified images of the same labels instead")
    parser.add_argument("--n-test", type=count, default=10000, help="test images for the margins (default 10000)")
    parser.add_argument("--plot-class", type=int, help="the class pinning.png follows (default: the first run's lowest)")
    args = parse(parser, argv)
    intervene = [args.at is not None, bool(args.drop), bool(args.epochs)]
    if any(intervene) and not all(intervene):
        raise UsageError("an intervention needs --at, --drop and --epochs together")
    if args.control and not args.drop:
        raise UsageError("--control is the control of a --drop intervention; give --at, --drop and --epochs")
    if args.drop and len(args.runs) != 1:
        raise UsageError(f"an intervention continues one run; {len(args.runs)} given")
    if args.drop and len(set(args.drop)) > MAX_DROP:
        raise UsageError(f"--drop: at most {MAX_DROP} images")
    if args.epochs and min(args.epochs) <= args.at:
        raise UsageError(f"--epochs must lie after --at {args.at}")
    sources = [(Path(f), *sweep_source(f, max(args.epochs or [1]))) for f in args.runs]
    for folder, _, _ in sources:
        if not snapshots(folder):
            raise UsageError(f"{folder}: no snap-e<epoch>.npz snapshots there (python -m experiments.beyond.sweep makes them)")
    out = Run("pinning", args)  # default folder runs/pinning
    data = load_mnist(args.data_dir)
    x_train, y_train = data["train"]
    if args.drop:
        source, run, seed = sources[0]
        trained = trained_indices(len(x_train), run.recipe.train["max_train"], None)
        if not np.isin(args.drop, trained).all():
            raise UsageError(f"--drop: the run trains on training-split indices 0..{len(trained) - 1}")
    if args.plot_class is not None and not 0 <= args.plot_class <= y_train.max():
        raise UsageError(f"--plot-class {args.plot_class}: no such class (0..{y_train.max()})")
    x_test, y_test = (a[:args.n_test] for a in data["test"])
    if args.drop:
        base, retrained = retrained_base(run, seed, source, args.at, out, data, out.log)
        dest = fork(run, seed, base, retrained, sorted(set(args.drop)), args.control, out, data, out.log)
        continue_run(run, seed, dest, sorted(set(args.epochs)), data, x_test[:2000], y_test[:2000], out.xp, out.log)
    rows = []
    for source, run, seed in sources:
        for folder in [source, *continuations(out.dir, run.name)]:
            for snap in snapshots(folder):
                model, meta = load_checkpoint(snap, out.xp)
                record = meta.get(INTERVENTION) or {}
                trained = trained_indices(len(x_train), run.recipe.train["max_train"], record)
                step = meta["epoch"] * -(-len(trained) // run.recipe.train["batch_size"])  # steps so far, about
                weight = readout_weight(run.recipe, model.params[-1]["b"].shape[0], step)
                rows.append({"run": folder.name, "epoch": meta["epoch"], "intervention": record,
                             **pinning_report(model, weight, x_train, y_train, trained, record.get(DROPPED, ()), x_test, y_test)})
                out.log(f"{folder.name} epoch {meta['epoch']}: {len(rows[-1]['misclassified']['index'])} "
                        f"training images misclassified")
    write_json(out.path("pinning.json"), {"n_test": len(x_test), "rows": rows})
    out.path("pinning.md").write_text(table(rows))
    out.log("\n" + table(rows))
    last = [r for r in rows if r["run"] == sources[0][0].name][-1]["z_correct_by_class"]
    k = args.plot_class if args.plot_class is not None else int(np.nanargmin([np.nan if v is None else v for v in last]))
    save_figure(out.path("pinning.png"), lambda axes: draw(axes, rows, k, sources[0][0].name), shape=(1, 2), figsize=(14, 4))
    return rows


def draw(axes, rows, k, first):
    """Class k's median own-class training logit (left) and median test margin (right) against epochs,
    one line per run folder; dashed, the pinned logit z* and margin 2 z* of run ``first``'s last
    snapshot where class k is pinned there."""
    z_star = [r for r in rows if r["run"] == first][-1]["pinned_logit"][k]
    for ax, key, label, times in ((axes[0][0], "z_correct_by_class", f"class {k}: median own-class logit (training)", 1),
                                  (axes[0][1], "margin_by_class_test", f"class {k}: median test margin", 2)):
        for name in dict.fromkeys(r["run"] for r in rows):
            rs = [r for r in rows if r["run"] == name and r[key][k] is not None]
            ax.plot([r["epoch"] for r in rs], [r[key][k] for r in rs], marker=".", label=_short(name, rows))
        if z_star:
            ax.axhline(times * z_star, color="0.5", ls="--", lw=0.8, label=f"{'2 ' if times == 2 else ''}z* = {times * z_star:.2f}")
        ax.set_xscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
    handles, labels = axes[0][1].get_legend_handles_labels()
    if z_star:  # the left panel's z* line beside the right's 2 z*
        handles.append(axes[0][0].get_legend_handles_labels()[0][-1])
        labels.append(f"z* = {z_star:.2f}")
    axes[0][1].legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # outside: the lines fill the axes


def _short(name, rows):
    """A run folder's legend label: seed and intervention."""
    rec = next(r["intervention"] for r in rows if r["run"] == name)
    seed = re.search(r"-seed(\d+)", name).group(1)
    if not rec:
        return f"seed {seed}"
    images = ", ".join(map(str, rec[DROPPED]))
    control = f" (control for {', '.join(map(str, rec['control_for']))})" if "control_for" in rec else ""
    return f"seed {seed}, from epoch {rec['at_epoch']} without image {images}{control}"


if __name__ == "__main__":
    cli(main)
