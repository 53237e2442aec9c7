"""One misclassified training image pins its class's readout: measured at every snapshot of a sweep run,
and checked by training on without it.

    python -m experiments.pinning runs/sweep/<run> [<run> ...] [--out DIR]
    python -m experiments.pinning runs/sweep/<run> --at E --drop I [I ...] --epochs E1 [E2 ...] [--control] [--out DIR]

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

The intervention (--at E --drop I --epochs ...): a sweep run keeps only its last training state, so
the run's recipe is trained again from scratch to epoch E into <out>/<run>-e<E>/ (and checked bit for
bit against the run's own snapshot at E, where there is one); that training state (parameters, Adam's
moments, the shuffling generator) then continues without training images I into
<out>/<run>-e<E>-drop<I>/, to each --epochs, a snapshot at each (``experiments.intervention``).
--control leaves out as many other images instead, drawn at random (seeded by the run's seed) from
the correctly classified training images of the same labels: the same change to the data's size and
order, other images. The same command continues either where it stopped.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from analysis.masking.readout import misclassified, pinned_logit, silence
from experiments.common import Run, UsageError, add_common_args, cli, count, parse, summary, write_json
from experiments.intervention import DROPPED, continue_run, save_intervened, sweep_source
from experiments.plotting import save_figure
from experiments.store import INTERVENTION, train_or_load
from experiments.sweep_report import snapshots
from nn.checkpoint import load_checkpoint
from nn.mnist import load_mnist
from nn.penalty import unit_weight
from nn.train import resume_state

LISTED = 8  # misclassified training images listed per snapshot in the table (the JSON keeps them all)


def readout_weight(recipe, n_classes):
    """One readout unit's penalty weight relative to one example's cross-entropy (``nn.penalty.unit_weight``)
    for a saturated recipe whose readout carries the sigma' penalty; None for any other readout."""
    m = recipe.method or {}
    if recipe.training != "saturated" or m.get("kinds", [None])[-1] != "sigmoid":
        return None
    return unit_weight(m["lam_max"], n_classes, recipe.train["batch_size"], m["units"], m["batch"])


def pinning(model, weight, x_train, y_train, x_test, y_test, dropped=()):
    """One snapshot's report (see the module docstring) as a dict of JSON-able values, on the whole
    training split; images ``dropped`` (training-split indices the model no longer trains on) are
    listed when misclassified but neither pin (n_pinning) nor count in their class (n_class)."""
    wrong = misclassified(model, x_train, y_train)
    train, test = silence(model, x_train, y_train), silence(model, x_test, y_test)
    K = len(train["z_correct_by_class"])
    trained = ~np.isin(np.arange(len(y_train)), np.asarray(dropped, dtype=np.int64))  # (N,)
    n_class = np.bincount(y_train[trained], minlength=K)
    n_pinning = np.bincount(wrong["predicted"][trained[wrong["index"]]], minlength=K)
    pinned = [pinned_logit(weight, int(n_class[k]), int(n_pinning[k])) if weight and n_pinning[k] else None
              for k in range(K)]
    return {"misclassified": {k: v.tolist() for k, v in wrong.items()}, "dropped": [int(i) for i in dropped],
            "n_class": n_class.tolist(), "z_own_by_class": train["z_correct_by_class"], "pinned_logit": pinned,
            "margin_by_class_test": test["margin_by_class"], "margin_test": test["margin"]}


def retrained_base(run, seed, source, at, out, data, log):
    """The run's training state at epoch ``at``: its recipe trained again from scratch into
    <out>/<run>-e<at>/train.npz (resumable), compared bit for bit with the run's snap-e<at>.npz.
    -> (path, equal: True, False, or None without a snapshot)."""
    base = out.dir / f"{run.name}-e{at}"
    base.mkdir(exist_ok=True)
    recipe = run.recipe.replace("train", epochs=at)
    model, _ = train_or_load(recipe, seed, base / "train.npz", data, out.xp, log, checkpoint_every=25,
                             checkpoint_seconds=600)
    snap = source / f"snap-e{at}.npz"
    if not snap.exists():
        return base / "train.npz", None
    theirs = load_checkpoint(snap, out.xp)[0]
    equal = all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for a, b in zip(model.params, theirs.params) for k in a)
    log(f"{base.name}: retrained to epoch {at}, {'equal bit for bit to' if equal else 'NOT equal to'} {snap}")
    return base / "train.npz", equal


def fork(run, seed, base_ckpt, drop, control, out, data, log):
    """Copy the training state ``base_ckpt`` to <out>/<run>-e<E>-drop<I>/train.npz with its intervention
    record (the training images left out; with ``control``, as many others of the same labels drawn at
    random). -> the folder (an existing one is reused)."""
    model, state, meta = resume_state(base_ckpt, run.recipe.config(seed), out.xp)
    x, y = data["train"]
    original = list(drop)
    if control:
        wrong = np.isin(np.arange(len(y)), np.concatenate([misclassified(model, x, y)["index"], drop]))
        pool = np.flatnonzero(np.isin(y, y[drop]) & ~wrong)  # right, of the same labels, not left out
        drop = sorted(np.random.default_rng(seed).choice(pool, size=len(drop), replace=False).tolist())
    dest = out.dir / f"{run.name}-e{state.epoch}-drop{'-'.join(map(str, drop))}"
    if not (dest / "train.npz").exists():
        dest.mkdir(exist_ok=True)
        record = {DROPPED: drop, "labels": y[drop].tolist(), "at_epoch": state.epoch, "source": str(base_ckpt),
                  **({"control_for": original} if control else {})}
        save_intervened(dest / "train.npz", model, state.adam, meta, record)
        log(f"{dest.name}: training images {drop} (labels {record['labels']}) left out from epoch {state.epoch}"
            + (f", the control for {original}" if control else ""))
    return dest


def continuations(out, name):
    """The folders in ``out`` that continue run ``name`` without some training images, by name."""
    pattern = re.compile(re.escape(name) + r"-e\d+-drop[\d-]+")
    return [p for p in sorted(Path(out).iterdir()) if pattern.fullmatch(p.name) and snapshots(p)]


def table(rows):
    """Markdown: one line per snapshot; per class the median own-class training logit, with the pinned
    logit z* in brackets where images are misclassified as that class, and the median test margin."""
    K = len(rows[0]["z_own_by_class"])
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    lines = ["| run | epoch | misclassified training images (index: label -> predicted, gap) | "
             + " | ".join(f"class {k}: z_k (z*) / test margin" for k in range(K)) + " |",
             "| --- | --- | --- |" + " --- |" * K]
    for r in rows:
        w = r["misclassified"]
        listed = ", ".join(f"{i}: {a} -> {b}, {g:.1f}" + (" (left out)" if i in r["dropped"] else "") for i, a, b, g in
                           list(zip(w["index"], w["label"], w["predicted"], w["gap"]))[:LISTED])
        more = len(w["index"]) - LISTED
        cells = [fmt(r["z_own_by_class"][k]) + (f" ({r['pinned_logit'][k]:.2f})" if r["pinned_logit"][k] else "")
                 + f" / {fmt(r['margin_by_class_test'][k])}" for k in range(K)]
        lines.append(f"| {r['run']} | {r['epoch']} | {listed or 'none'}{f' and {more} more' if more > 0 else ''} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = add_common_args(argparse.ArgumentParser(description=summary(__doc__)))
    parser.add_argument("runs", nargs="+", help="sweep run folders (runs/sweep/<run>)")
    parser.add_argument("--at", type=count, help="the epoch to intervene at (with --drop and --epochs)")
    parser.add_argument("--drop", type=int, nargs="+", help="training-split indices to train on without")
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
    if args.epochs and min(args.epochs) <= args.at:
        raise UsageError(f"--epochs must lie after --at {args.at}")
    sources = [(Path(f), *sweep_source(f, max(args.epochs or [1]))) for f in args.runs]
    out = Run("pinning", args)  # default folder runs/pinning
    data = load_mnist(args.data_dir)
    x_train, y_train = data["train"]
    if args.drop and not all(0 <= i < len(x_train) for i in args.drop):
        raise UsageError(f"--drop: training-split indices lie in 0..{len(x_train) - 1}")
    if args.plot_class is not None and not 0 <= args.plot_class <= y_train.max():
        raise UsageError(f"--plot-class {args.plot_class}: no such class (0..{y_train.max()})")
    x_test, y_test = (a[:args.n_test] for a in data["test"])
    checks = {}
    if args.drop:
        source, run, seed = sources[0]
        base, checks[run.name] = retrained_base(run, seed, source, args.at, out, data, out.log)
        dest = fork(run, seed, base, sorted(set(args.drop)), args.control, out, data, out.log)
        continue_run(run, seed, dest, sorted(set(args.epochs)), data, x_test[:2000], y_test[:2000], out.xp, out.log)
    rows = []
    for source, run, seed in sources:
        for folder in [source, *continuations(out.dir, run.name)]:
            for snap in snapshots(folder):
                model, meta = load_checkpoint(snap, out.xp)
                record = meta.get(INTERVENTION) or {}
                rows.append({"run": folder.name, "epoch": int(snap.stem[len("snap-e"):]), "intervention": record,
                             **pinning(model, readout_weight(run.recipe, model.params[-1]["b"].shape[0]),
                                       x_train, y_train, x_test, y_test, record.get(DROPPED, ()))})
                out.log(f"{folder.name} epoch {rows[-1]['epoch']}: {len(rows[-1]['misclassified']['index'])} "
                        f"training images misclassified")
    write_json(out.path("pinning.json"), {"n_test": len(x_test), "retrained_equal": checks, "rows": rows})
    out.path("pinning.md").write_text(table(rows))
    out.log("\n" + table(rows))
    first = [r for r in rows if r["run"] == sources[0][0].name]
    k = args.plot_class if args.plot_class is not None else int(np.argmin(first[-1]["z_own_by_class"]))
    save_figure(out.path("pinning.png"), lambda axes: draw(axes, rows, k), shape=(1, 2), figsize=(11, 4))
    return rows


def draw(axes, rows, k):
    """Class k's median own-class training logit (left) and median test margin (right) against epochs,
    one line per run folder; the pinned logit z* and margin 2 z* (one misclassified image) dashed."""
    z_star = next((r["pinned_logit"][k] for r in rows if r["pinned_logit"][k]), None)
    for ax, key, label, line in ((axes[0][0], "z_own_by_class", f"class {k}: median own-class logit (training)", 1),
                                 (axes[0][1], "margin_by_class_test", f"class {k}: median test margin", 2)):
        for name in dict.fromkeys(r["run"] for r in rows):
            rs = [r for r in rows if r["run"] == name and r[key][k] is not None]
            ax.plot([r["epoch"] for r in rs], [r[key][k] for r in rs], marker=".", label=_short(name, rows))
        if z_star:
            ax.axhline(line * z_star, color="0.5", ls="--", lw=0.8, label=("z*" if line == 1 else "2 z*") + f" = {line * z_star:.2f}")
        ax.set_xscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)


def _short(name, rows):
    """A run folder's legend label: seed and intervention."""
    rec = next(r["intervention"] for r in rows if r["run"] == name)
    seed = re.search(r"-seed(\d+)", name).group(1)
    if not rec:
        return f"seed {seed}"
    if "control_for" in rec:
        return f"seed {seed}, from {rec['at_epoch']} without image {rec[DROPPED][0]} (control)"
    return f"seed {seed}, from {rec['at_epoch']} without image {', '.join(map(str, rec[DROPPED]))}"


if __name__ == "__main__":
    cli(main)
