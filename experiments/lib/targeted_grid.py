"""The 10 x 10 source-class x target-class grid of a targeted attack (section 7, Figures 5 and 8),
shared by ``experiments.lbfgs_grid`` and ``experiments.adam_attack``.

For each model (a Table 1 checkpoint) and each source kind ("least" / "most" confident correctly
classified test image of each class), the attack runs on the 90 (source, target) pairs. Written to
the run folder: ``<model>-<sources>.npz`` (every per-pair record: success, iterations, evaluations,
final images, L2 / L-inf distances, loss curves, stop reasons, source indices, targets),
``summary.json`` and ``summary.md`` (success counts out of 90, median iterations and distances over
the successes, beside the paper), and with the ``plots`` extra ``<sources>.png``, the image grids.
The figures can be redrawn from the NPZ files alone:
``python -m experiments.figures --grids <folder>``. A library module: the two scripts above run it.
Gradients are computed in the paper's numerics, float32 with TensorFlow's flush-to-zero
(``--numerics float32``: numpy's float32, subnormals kept).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
import zipfile
from pathlib import Path

import numpy as np

from attacks.targeted import TargetedAdam, TargetedLBFGS, TargetedResult, grid_pairs, select_sources
from experiments.lib import presets
from experiments.lib.cli import (add_checkpoint_args, add_common_args, checkpoint_stamp, about,
                                 parse, count, load_models, positive, result_options)
from experiments.lib.runs import Run, write_json
from experiments.lib.plotting import save_figure
from experiments.lib.paper import ARCH_NAMES
from nn.backend import to_device
from nn.checkpoint import atomic_write
from nn.mnist import load_mnist
from nn.numerics import FORWARD_NUMERICS, upgrade_settings

MODELS = ("sigmoid_mlp-vanilla", "sigmoid_mlp-saturated", "relu_mlp-vanilla", "relu_mlp-saturated",
          "cnn-vanilla", "cnn-saturated")
SOURCES = ("least", "most")

PAPER = {
    "lbfgs": "vanilla: always fooled, usually within 1-2 L-BFGS iterations; saturated sigmoid MLP: "
             "mostly not fooled within 1000 iterations, 5 successes from the most-confident "
             "sources",
    "adam": "vanilla: always fooled, usually in under 10 Adam iterations; saturated: mostly not "
            "fooled (the paper ran up to 30 million iterations on single pairs)",
}


def attack_grid(model, x_test, y_test, attack, sources, xp):
    """Run ``attack(model, x0, targets)`` on the 90 pairs from one kind of source.

    -> (TargetedResult, source test indices (90,), targets (90,)).
    """
    s_cls, t_cls = grid_pairs()
    idx = select_sources(model, to_device(x_test, xp), to_device(y_test, xp))[sources][s_cls]
    x0 = to_device(x_test[idx], xp, model.dtype)
    return attack(model, x0, to_device(t_cls, xp)), idx, t_cls


def save_result(path, result, idx, targets, meta):
    """One grid's records and ``meta`` (JSON-able: the options, the checkpoint's stamp, the
    time)."""
    arrays = {**result.arrays(), "source_index": idx, "target": targets,
              "meta": np.array(json.dumps(meta))}
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def load_result(path, key):
    """An earlier grid at ``path`` whose meta["key"] equals ``key`` (same options and checkpoint):
    -> (TargetedResult, meta), or None when there is none, it is unreadable or was made
    otherwise."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            old = meta.get("key") or {}
            if ({**old, "options": upgrade_settings(old.get("options", {}))}
                    != json.loads(json.dumps(key))):
                return None
            fields = [f.name for f in dataclasses.fields(TargetedResult)]
            arrays = {k: z[k] for k in fields}
    except (OSError, ValueError, KeyError, json.JSONDecodeError, zipfile.BadZipFile, EOFError):
        return None
    arrays["stop"] = [str(s) for s in arrays["stop"]]
    return TargetedResult(**arrays), meta


def format_summary(rows, attack):
    """Markdown: one line per (model, sources) row: pairs fooled of 90, median iterations, L2 and
    L-inf distances over the successes, seconds; then the paper's numbers for ``attack`` (a key of
    PAPER). -> str."""
    lines = ["| model | sources | fooled / 90 | median iterations | median L2 | "
             "median Linf | time (s) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    for r in rows:
        lines.append(f"| {r['model']} | {r['sources']} | {r['success']} | "
                     f"{fmt(r['median_iterations'], 'g')} | {fmt(r['median_l2'], '.2f')} | "
                     f"{fmt(r['median_linf'], '.2f')} | {r['seconds']:.0f} |")
    return "\n".join(lines) + f"\n\nPaper ({attack}): {PAPER[attack]}.\n"


def draw_grids(folder):
    """One PNG per source kind: for each model, the 10 x 10 grid of final images (row: source class,
    column: target class; the diagonal is blank; a failure is drawn faded with a red cross).
    Needs matplotlib (the ``plots`` extra); returns the paths written, or [] without it."""
    folder = Path(folder)
    written = []
    for sources in SOURCES:
        files = sorted(folder.glob(f"*-{sources}.npz"))
        out = folder / f"{sources}.png"
        if files and save_figure(out, lambda axes, files=files: _draw_grid_row(axes[0], files),
                                 (1, len(files)), (5 * len(files), 5.6), dpi=90):
            written.append(out)
    return written


def _grid_title(stem, fooled):
    """'relu_mlp-saturated-most' -> 'ReLU MLP, saturated: most confident sources, 12 of 90
    fooled'."""
    arch, training, sources = stem.split("-")
    return (f"{ARCH_NAMES[arch]}, {training}: {sources} confident sources\n{fooled} of 90 "
            "pairs fooled")


def _draw_grid_row(axes, files):
    s_cls, t_cls = grid_pairs()
    for ax, f in zip(axes, files):
        with np.load(f) as z:
            x_adv, success = z["x_adv"][:, 0], z["success"]
        side = x_adv.shape[-1]
        canvas = np.zeros((10 * side, 10 * side))  # ink: 1 is black once inverted below
        for k, (s, t) in enumerate(zip(s_cls, t_cls)):
            canvas[s * side:(s + 1) * side, t * side:(t + 1) * side] = (x_adv[k] if success[k]
                                                                        else 0.3 * x_adv[k])
            if not success[k]:
                # a red X
                ax.plot([t * side, (t + 1) * side], [s * side, (s + 1) * side], "r-", lw=0.8)
                ax.plot([t * side, (t + 1) * side], [(s + 1) * side, s * side], "r-", lw=0.8)
        ax.imshow(1 - canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(_grid_title(f.stem, int(success.sum())), fontsize=11)
        ax.set_xlabel("target class")
        ax.set_ylabel("source class")
        ax.set_xticks(np.arange(10) * side + side / 2, range(10))
        ax.set_yticks(np.arange(10) * side + side / 2, range(10))


def main(argv, script, attack_name, make_attack, add_args, quick):
    """A grid script's body: parse ``argv`` (``add_args(parser)`` adds the attack's options,
    ``quick`` is the --quick preset), attack the 90 pairs of each model and source kind with
    ``make_attack(args)`` (a result recorded with the same options and checkpoint is kept) and write
    the run folder of ``script`` (an NPZ per model and sources, summary.json, summary.md, the grids'
    PNGs). -> the summary rows."""
    parser = add_checkpoint_args(add_common_args(argparse.ArgumentParser(
        description=f"targeted {attack_name} grid (section 7)")), MODELS)
    parser.add_argument("--sources", nargs="*", default=list(SOURCES), choices=SOURCES)
    parser.add_argument("--numerics", choices=FORWARD_NUMERICS, default="paper",
                        help="the gradients' arithmetic: paper (float32 with TensorFlow's "
                             "flush-to-zero, the default) or float32 (numpy's, subnormals kept)")
    add_args(parser)
    args = parse(parser, argv, quick=quick)
    run = Run(script, args)
    models = load_models(args, run.xp)  # --from checked before MNIST is read
    data = load_mnist(args.data_dir)
    x_test, y_test = data["test"]
    attack = make_attack(args)
    rows = []
    for name, model in models.items():
        with about(name):  # a user error raised for this model names it
            for sources in args.sources:
                path = run.path(f"{name}-{sources}.npz")
                key = {"options": result_options(args),
                       "checkpoint": checkpoint_stamp(args.checkpoints, name)}
                done = load_result(path, key)
                if done:  # recorded by an earlier run with the same options and checkpoint
                    result, seconds = done[0], done[1]["seconds"]
                    run.log(f"{name} {sources}: recorded before ({path.name}, same options and "
                            "checkpoint); kept")
                else:
                    t0 = time.perf_counter()
                    result, idx, targets = attack_grid(model, x_test, y_test, attack,
                                                       sources, run.xp)
                    seconds = time.perf_counter() - t0
                    save_result(path, result, idx, targets,
                                {"key": key, "seconds": seconds, "options": vars(args)})
                row = {"model": name, "sources": sources, **result.summary(), "seconds": seconds,
                       "stops": {s: result.stop.count(s) for s in sorted(set(result.stop))}}
                rows.append(row)
                run.log(f"{name} {sources}-confident sources: fooled {row['success']}/90, median "
                        f"iterations {row['median_iterations']}, median L2 {row['median_l2']}, "
                        f"{seconds:.0f} s; stops {row['stops']}")
    write_json(run.path("summary.json"), {"attack": attack_name, "options": vars(args),
                                          "rows": rows, "paper": PAPER[attack_name]})
    table = format_summary(rows, attack_name)
    run.path("summary.md").write_text(table)
    run.log("\n" + table)
    pngs = draw_grids(run.dir)
    run.log(f"figures: {[str(p) for p in pngs]}" if pngs
            else "figures: skipped (install the plots extra)")
    return rows


def lbfgs_main(argv=None):
    """``python -m experiments.lbfgs_grid``: the grid of targeted L-BFGS (Figure 5). -> the summary
    rows."""
    def add(p):
        p.add_argument("--max-iter", type=count, default=1000,
                       help="L-BFGS iterations per pair (default 1000)")

    def make(args):
        return TargetedLBFGS(max_iter=args.max_iter, numerics=args.numerics)
    return main(argv, "lbfgs_grid", "lbfgs", make, add, quick=presets.OPTIONS["lbfgs_grid"])


def adam_main(argv=None):
    """``python -m experiments.adam_attack``: the grid of targeted Adam (Figure 8). -> the summary
    rows."""
    def add(p):
        p.add_argument("--max-iter", type=count, default=10000,
                       help="Adam iterations per pair (default 10000)")
        p.add_argument("--lr", type=positive, default=0.01,
                       help="Adam step size in pixel units (default 0.01)")

    def make(args):
        return TargetedAdam(max_iter=args.max_iter, lr=args.lr, numerics=args.numerics)
    return main(argv, "adam_attack", "adam", make, add, quick=presets.OPTIONS["adam_attack"])
