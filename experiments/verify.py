"""Beyond the paper: bracket each Table 1 model's robust accuracy between a proof and an attack
(issue 14). For every model and eps: the share of test images proven robust by interval bound
propagation (``analysis.ibp``, a lower bound), the share that survives PGD (the audit's eps-sweep
attack: per-example worst of cross-entropy PGD in the paper's numerics and margin PGD with stable
derivatives, an upper bound), and the undecided share between them.

    python -m experiments.verify                                   # the Table 1 models in runs/table1
    python -m experiments.verify --models sigmoid_mlp-saturated --n-test 10000

Writes verify.json (every number; rewritten after each model, and a model already bracketed with the
same options and checkpoint is kept when the command is run again), verify.md and, with the plots
extra, verify.png (verified and attacked accuracy against eps, one panel per model).
"""
from __future__ import annotations

import argparse
import time

from analysis import audit
from analysis.ibp import verified_fraction
from experiments.audit import MODELS, sweep_attack
from experiments.common import (Run, add_checkpoint_args, add_common_args, amount, checkpoint_stamp, cli, count,
                                load_models, resumable_rows, save_figure, write_json)
from nn.backend import to_device
from nn.mnist import load_mnist

EPS = (0.01, 0.03, 0.1, 0.25)


def bracket(model, x, y, eps_values, args):
    """-> {"eps", "verified" (% proven by IBP), "attacked" (% surviving the attack), "undecided" (%),
    "seconds"} for one model; x, y on the host."""
    t0 = time.perf_counter()
    verified = [100 * verified_fraction(model, x, y, e, batch=args.batch) for e in eps_values]
    xd, yd = to_device(x, model.xp, model.dtype), to_device(y, model.xp)
    attacked = audit.accuracy_curve(model, xd, yd, list(eps_values), sweep_attack(args))
    return {"eps": list(eps_values), "verified": verified, "attacked": attacked,
            "undecided": [a - v for a, v in zip(attacked, verified)], "seconds": time.perf_counter() - t0}


def format_table(rows):
    lines = ["| model | n | " + " | ".join(f"eps {e}: verified / attacked" for e in rows[0]["eps"]) + " |",
             "| --- | --- |" + " --- |" * len(rows[0]["eps"])]
    for r in rows:
        lines.append(f"| {r['model']} | {r['n']} | " + " | ".join(
            f"{v:.1f} / {a:.1f}" for v, a in zip(r["verified"], r["attacked"])) + " |")
    return "\n".join(lines) + ("\n\n(% of the test images: proven robust by interval bound propagation / surviving "
                               "the per-example worst of two PGD attacks; the true robust accuracy lies between)\n")


def main(argv=None):
    parser = add_checkpoint_args(add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0])),
                                 MODELS)
    parser.add_argument("--eps", type=amount, nargs="+", default=list(EPS))
    parser.add_argument("--n-test", type=count, default=2000, help="test images per model (default 2000)")
    parser.add_argument("--sweep-steps", type=count, default=100, help="PGD steps per eps (default 100)")
    parser.add_argument("--batch", type=count, default=250)
    args = parser.parse_args(argv)
    if args.quick:
        args.n_test, args.sweep_steps = 100, 5
    args.eps = sorted(args.eps)
    run = Run("verify", args)
    x, y = (a[:args.n_test] for a in load_mnist(args.data_dir)["test"])
    models = load_models(args, run.xp)
    done = resumable_rows(run.path("verify.json"), args)
    rows = []
    for name, model in models.items():
        if name in done:
            rows.append(done[name])
            run.log(f"{name}: bracketed before with the same options and checkpoint (verify.json); kept")
            continue
        row = {"model": name, "n": len(x), **bracket(model, x, y, args.eps, args),
               "checkpoint": checkpoint_stamp(args.checkpoints, name)}
        rows.append(row)
        run.log(f"{name}: verified {[round(v, 1) for v in row['verified']]} %, attacked "
                f"{[round(a, 1) for a in row['attacked']]} % at eps {args.eps} ({row['seconds']:.0f} s)")
        others = [r for m, r in done.items() if m not in models]
        write_json(run.path("verify.json"), {"rows": rows + others, "options": vars(args)})
    table = format_table(rows)
    run.path("verify.md").write_text(table)
    run.log("\n" + table)

    def draw(axes):
        for ax, r in zip(axes.ravel(), rows):
            ax.fill_between(r["eps"], r["verified"], r["attacked"], color="0.85", label="undecided")
            ax.plot(r["eps"], r["attacked"], marker="o", label="attacked (upper bound)")
            ax.plot(r["eps"], r["verified"], marker="s", label="verified by IBP (lower bound)")
            ax.set_xscale("log")
            ax.set_ylim(0, 100)
            ax.set_xlabel("eps (L-inf)")
            ax.set_ylabel("robust accuracy (%)")
            ax.set_title(r["model"])
            ax.legend(fontsize=7)
        for ax in axes.ravel()[len(rows):]:
            ax.set_visible(False)
    cols = min(3, len(rows))
    if save_figure(run.path("verify.png"), draw, shape=(-(-len(rows) // cols), cols),
                   figsize=(5 * cols, 4 * -(-len(rows) // cols))):
        run.log(f"figure {run.path('verify.png')}")
    return rows


if __name__ == "__main__":
    cli(main)
