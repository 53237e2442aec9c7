"""The common-mode test of the width stall: shift every readout logit of a sweep run by one
constant, which the cross-entropy cannot see and the readout's penalty can, and continue training.

The saturated sigmoid MLP's readout penalty is phi(z_k) = sigma'(z_k) on each logit (eqs. 6-8). Its
gradient, sigma''(z) = sigma'(z) (1 - 2 sigma(z)), is negative for z > 0 and positive for z < 0, so
gradient descent on it moves every logit away from 0 on the side where it sits. The margin
z_y - max_{j != y} z_j grows from both sides when the wrong classes' logits sit below 0 and the true
class's above; at width 1,000 every logit sits far above 0 (the readout's common mode,
``analysis.masking.readout.readout_sides``), and the penalty then pushes the wrong classes up,
against the margin. Softmax, cross-entropy, predictions, margins and input gradients are unchanged
by a common shift z -> z - s (up to the float rounding of z - s), so shifting the readout biases by
the common mode changes what the penalty does and nothing else.

    python -m experiments.beyond.common_mode runs/sweep/<run> --epochs 450 500 600 800
        [--shift none] [--out DIR]
    python -m experiments.beyond.common_mode runs/sweep/<run> --epochs 1300 1400
        --adam-eps 1e-12 [--out DIR]

Takes the run's last training checkpoint (train.npz: parameters, Adam's moments, the shuffling
generator, at epoch E), subtracts s from every readout bias, with s the median over the first 2,000
training images (the correctly classified ones) of (z_y + max_{j != y} z_j) / 2, so that the median
image's true logit sits at +margin/2 and its highest wrong one at -margin/2, and continues the run's
own recipe from epoch E to each --epochs, keeping and evaluating a snapshot at each
(``experiments.lib.evaluation.evaluate_snapshot``: FGSM in every numerics, exactly-zero gradients,
margins) with the readout's sides (``readout_sides``). The shifted run lives in
<out>/<run>-shift<E>/; the same command continues it there, even after the source run has trained
on. Its checkpoints record the shift (``"intervention"``), so they are never taken for the recipe's
own model (``experiments.lib.store.stored_key``). ``--shift none`` is its control: the same
checkpoint continued as it is, in <out>/<run>-from<E>/ (the recipe's own model, snapshots at the
same epochs). ``--adam-eps X`` continues the shifted run from its last training state with Adam's
epsilon X (``nn.optim.adam_update``) in <out>/<run>-shift<E>-eps<X>/: once a parameter's gradient
RMS falls below epsilon, its Adam step shrinks in proportion. Writes <run>.json and <run>.md to
<out>: the run's own snapshots (evaluated on --n-test images; the sweep's records reused where they
were made on as many), then every continuation of it there, and for the last training state of each
what Adam's epsilon leaves of its step (``experiments.lib.readout_shift.adam_steps``). A run's
readout must carry the sigma' penalty (a sigmoid MLP's sweep run): elsewhere a common shift moves
nothing the penalty sees. With the ``plots`` extra, <run>.png: margin and common mode against
epochs.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from experiments.lib.cli import UsageError, add_common_args, cli, count, parse, summary
from experiments.lib.drawing_beyond import draw_common_mode
from experiments.lib.runs import Run, write_json
from experiments.lib.intervention import carried_meta, continue_run, sweep_source
from experiments.lib.plotting import save_figure
from experiments.lib.readout_shift import (adam_steps, eps_fork, shift_continuations, shifted,
                                           trajectory)
from experiments.lib.recipes import model_key
from experiments.lib.store import INTERVENTION, RECIPE_FILE, stored_key
from nn.checkpoint import load_checkpoint, save_checkpoint
from nn.mnist import load_mnist
from nn.train import resume_state


def adam_table(steps):
    """Markdown: per run folder, the median step share of each weight layer's W and b."""
    lines = ["| run | epoch | Adam's epsilon | median step share left by epsilon, per weight "
             "layer: W / b | entries below 1/2, W / b |", "| --- | --- | --- | --- | --- |"]
    for name, a in steps.items():
        med = ", ".join(f"{m['W']:.3f} / {m['b']:.3f}" for m in a["median"])
        low = ", ".join(f"{100 * m['W']:.0f} / {100 * m['b']:.0f} %" for m in a["below_half"])
        lines.append(f"| {name} | {a['epoch']} | {a['eps']:g} | {med} | {low} |")
    return "\n".join(lines) + "\n"


def table(rows_by_run):
    """Markdown: one line per snapshot of each run."""
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    lines = ["| run | epoch | median margin | common mode | wrong logits > 0 | z_y / max z_wrong | "
             "clean | FGSM paper | FGSM stable | zero gradients |",
             "| --- | " + "--- | " * 9]
    for name, rows in rows_by_run.items():
        for r in rows:
            lines.append(f"| {name} | {r['epoch']} | {r['margin']:.1f} | {r['common_mode']:.1f} | "
                         f"{100 * r['wrong_positive']:.1f} % | {r['z_correct']:.1f} / "
                         f"{r['z_wrong_max']:.1f} | {pct(r['clean_acc'])} | {pct(r['fgsm_paper'])} "
                         f"| {pct(r['fgsm_stable'])} | {pct(r['zero_grad_paper'])} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    """Continue a sweep run after the common-mode shift (or as its control, or with another Adam
    epsilon); write <run>.json, <run>.md and <run>.png. -> {run folder name: its rows, one per
    snapshot}."""
    parser = add_common_args(argparse.ArgumentParser(description=summary(__doc__)))
    parser.add_argument("run", help="a sweep run's folder (runs/sweep/<run>), with recipe.json "
                                    "and train.npz")
    parser.add_argument("--epochs", type=count, nargs="+", required=True,
                        help="continue the run to these epochs, a snapshot at each")
    parser.add_argument("--shift", choices=["common-mode", "none"], default="common-mode",
                        help="common-mode (default): shift the readout by its common mode first; "
                             "none: the control, the run continued as it is")
    parser.add_argument("--adam-eps", type=float,
                        help="continue the shifted run from its last training state with this Adam "
                             "epsilon instead, in <run>-shift<E>-eps<X>")
    parser.add_argument("--n-test", type=count, default=2000,
                        help="test images per evaluation (default 2000)")
    parser.add_argument("--batch", type=count, default=500)
    args = parse(parser, argv)
    source = Path(args.run)
    run, seed = sweep_source(source, max(args.epochs))
    if run.recipe.readout_penalty != "sigmoid":
        raise UsageError(f"{source}: its readout's penalty is {run.recipe.readout_penalty!r}; "
                         "the common mode matters to a sigma' penalty on the readout only (a "
                         "sigmoid MLP's sweep run)")
    out = Run("common_mode", args)  # default folder runs/common_mode
    data = load_mnist(args.data_dir)
    x_test, y_test = data["test"][0][:args.n_test], data["test"][1][:args.n_test]
    kind = "shift" if args.shift == "common-mode" else "from"
    existing = shift_continuations(out.dir, run.name)[kind]
    if len(existing) > 1:
        raise UsageError(f"{out.dir} holds {len(existing)} such continuations "
                         f"({', '.join(p.name for p in existing)}); give --out another folder")
    if args.adam_eps is not None:
        if not (math.isfinite(args.adam_eps) and args.adam_eps > 0):
            raise UsageError(f"--adam-eps must be a positive finite number, got {args.adam_eps}")
        if kind != "shift" or not existing:
            raise UsageError("--adam-eps continues the shifted run: make it first, "
                             "without --adam-eps and without --shift none")
        dest = eps_fork(existing[0], run, seed, args.adam_eps, args.epochs, out.xp, out.log)
    elif existing:
        dest = existing[0]
    else:  # a new continuation, from the source's training state as it is now
        resumed = resume_state(source / "train.npz", run.recipe.config(seed), out.xp)
        if resumed is None or stored_key(resumed[2]) != model_key(run.recipe, seed):
            raise UsageError(f"{source}/train.npz holds no training state of the model its "
                             f"{RECIPE_FILE} names")
        model, state, meta = resumed
        if min(args.epochs) <= state.epoch:
            raise UsageError(f"--epochs: {source}/train.npz is at epoch {state.epoch}; "
                             "continue to later epochs only")
        dest = out.dir / f"{run.name}-{kind}{state.epoch}"
        dest.mkdir(exist_ok=True)
        if kind == "shift":
            x_train, y_train = data["train"][0][:2000], data["train"][1][:2000]
            rec = shifted(model, state.adam, meta, source / "train.npz", dest / "train.npz",
                          x_train, y_train)
            out.log(f"{dest.name}: readout biases shifted by -{rec['readout_shift']:.2f} at "
                    f"epoch {state.epoch}; wrong logits above 0 "
                    f"{100 * rec['before']['wrong_positive']:.1f} -> "
                    f"{100 * rec['after']['wrong_positive']:.1f} %, "
                    f"median margin {rec['before']['margin']:.2f} -> {rec['after']['margin']:.2f}")
        else:  # the control: the recipe's own model, continued
            save_checkpoint(dest / "train.npz", model, optimizer=state.adam, **carried_meta(meta))
    continue_run(run, seed, dest, sorted(set(args.epochs)), data, x_test, y_test, out.xp,
                 out.log, args.batch)
    found = shift_continuations(out.dir, run.name)
    rows = {source.name: trajectory(source, x_test, y_test, out.xp, out.log,
                                    args.batch, keep=False)}
    continued = found["shift"] + found["eps"] + found["from"]
    rows.update({f.name: trajectory(f, x_test, y_test, out.xp, out.log, args.batch)
                 for f in continued})
    shifts = {f.name: load_checkpoint(f / "train.npz")[1].get(INTERVENTION) for f in continued}
    steps = {f.name: adam_steps(f) for f in [source] + continued}
    write_json(out.dir / f"{run.name}.json", {"n_test": len(x_test), "interventions": shifts,
                                              "runs": rows, "adam_step_share": steps})
    (out.dir / f"{run.name}.md").write_text(table(rows) + "\n" + adam_table(steps))
    out.log("\n" + table(rows) + "\n" + adam_table(steps))
    save_figure(out.dir / f"{run.name}.png",
                lambda axes: draw_common_mode(axes, rows, source.name, shifts), shape=(1, 2),
                figsize=(10, 4))
    return rows


if __name__ == "__main__":
    cli(main)
