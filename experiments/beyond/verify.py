"""Beyond the paper: bracket each Table 1 model's robust accuracy between a proof and an attack. For
every model and eps, the share of test images proven robust by each verifier (lower bounds):
interval bound propagation (``analysis.proofs.ibp``, every model), linear relaxation (CROWN:
``analysis.proofs.crown`` on the MLPs, ``analysis.proofs.crown_cnn`` through the CNNs, on the
examples IBP leaves open and the attack does not fool) and, for ReLU MLPs, CROWN with its slopes
optimised (alpha-CROWN, ``analysis.proofs.alpha_crown``, --alpha-steps) on the examples CROWN
leaves open and the attack does not fool, then the exact MILP (``analysis.proofs.milp``) on those
alpha-CROWN leaves open (at most --milp-max of them, --milp-time seconds each); the share that
survives the attack (the audit's eps-sweep attack, ``analysis.masking.suite.eps_sweep_attack``:
per-example worst of APGD with the cross-entropy in the paper's numerics and APGD with the DLR loss
and stable derivatives, Croce & Hein 2020; MILP counterexamples count as fooled too), an upper
bound; and the undecided share between them. A verified example that an attack fooled would be a
bug: their number is reported (``contradictions``) and must be 0; to look for one, the examples
proven robust are attacked again by attacks the proofs never saw, Square and random points of the
ball (--square-queries, --ball-points).

    python -m experiments.beyond.verify          # the Table 1 models in runs/table1
    python -m experiments.beyond.verify --models relu_mlp-saturated --survivors 20 --milp-time 120

``--survivors K``: also take the first K test images that survive the attack (and the MILP) at the
largest eps through every method (is the saturated ReLU MLP's robustness there real?)
and record, per image, the verdict and the bound that left it undecided.

Writes verify.json (every number; rewritten after each model, and a model already bracketed with the
same options and checkpoint is kept when the command is run again), verify.md and, with the plots
extra, verify.png (verified and attacked accuracy against eps, one panel per model).
"""
from __future__ import annotations

import argparse
import time

from analysis.masking.suite import apgd_attacks
from experiments.lib import presets
from experiments.lib.cli import (add_checkpoint_args, add_common_args, amount, checkpoint_stamp,
                                 cli, summary, parse, count, load_models, positive, resumable_rows,
                                 whole)
from experiments.lib.drawing_beyond import figure_verify
from experiments.lib.runs import Run, write_json
from experiments.lib.paper import MODELS
from experiments.lib.verification import bracket, survivors
from nn.mnist import load_mnist

EPS = (0.01, 0.03, 0.1, 0.25)


def format_table(rows):
    """Markdown: one line per model row of ``experiments.lib.verification.bracket``; per eps the
    shares verified by IBP / CROWN / alpha-CROWN / MILP and the share surviving the attack ('-'
    where a method
    does not apply). -> str."""
    lines = ["| model | n | " + " | ".join(f"eps {e}: verified (IBP / CROWN / alpha-CROWN / MILP)"
                                           " / attacked" for e in rows[0]["eps"])
             + " |", "| --- | --- |" + " --- |" * len(rows[0]["eps"])]
    for r in rows:
        cells = []
        for k in range(len(r["eps"])):
            v = " / ".join(f"{r['verified_by'][m][k]:.1f}" if m in r["verified_by"] else "-"
                           for m in ("ibp", "crown", "alpha_crown", "milp"))
            cells.append(f"{v} / {r['attacked'][k]:.1f}")
        lines.append(f"| {r['model']} | {r['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + (
        "\n\n(% of the test images proven robust by interval bound propagation / by linear "
        "relaxation (CROWN) / with its slopes optimised (alpha-CROWN, ReLU MLPs) / with "
        "the exact MILP on alpha-CROWN's open examples "
        "(ReLU MLPs, capped by --milp-max) / surviving the per-example worst of APGD-CE and "
        "APGD-DLR and the MILP's counterexamples; the true robust accuracy lies between the "
        "largest verified share and the attacked one; '-': the method does not apply)\n")


def main(argv=None):
    """Bracket the chosen models' robust accuracy at each eps; write verify.json, verify.md and
    verify.png. -> the rows, one per model."""
    parser = add_checkpoint_args(add_common_args(argparse.ArgumentParser(
        description=summary(__doc__))), MODELS)
    parser.add_argument("--eps", type=amount, nargs="+", default=list(EPS))
    parser.add_argument("--n-test", type=count, default=500,
                        help="test images per model, the first of the test split (default 500; "
                             "on one core minutes to an hour per MLP, and through a CNN about "
                             "10 s per image and eps that IBP leaves open and the attack does "
                             "not fool)")
    parser.add_argument("--sweep-steps", type=count, default=100,
                        help="APGD steps per attack and eps (default 100)")
    parser.add_argument("--batch", type=count, default=250)
    parser.add_argument("--crown-batch", type=count, default=20,
                        help="examples per CROWN pass (memory)")
    parser.add_argument("--alpha-steps", type=count, default=20,
                        help="alpha-CROWN's gradient steps on the slopes (ReLU MLPs; default 20)")
    parser.add_argument("--milp-max", type=count, default=20,
                        help="examples per model and eps for the MILP")
    parser.add_argument("--milp-time", type=positive, default=60.0,
                        help="seconds per example for the MILP")
    parser.add_argument("--milp-max-binaries", type=count, default=300,
                        help="skip the MILP for an example with more unstable units than this "
                             "(default 300)")
    parser.add_argument("--square-queries", type=whole, default=1000,
                        help="Square's queries on every example proven robust, a check of the "
                             "proofs (default 1000; 0: none)")
    parser.add_argument("--ball-points", type=whole, default=1000,
                        help="uniform random points of the ball tried on every example proven "
                             "robust, a check of the proofs (default 1000; 0: none)")
    parser.add_argument("--survivors", type=count, default=None,
                        help="survivors at the largest eps to examine (the MILP then has no "
                             "--milp-max-binaries)")
    args = parse(parser, argv, quick=presets.OPTIONS["verify"])
    args.eps = sorted(args.eps)
    # not an option: the upper bound's attacks by name, saved with the options, so that rows of
    # another are not resumed
    args.attacks = list(apgd_attacks(args.eps[0], args.sweep_steps, 1, args.seed))
    run = Run("verify", args)
    models = load_models(args, run.xp)  # --from checked before MNIST is read
    x, y = (a[:args.n_test] for a in load_mnist(args.data_dir)["test"])
    done = resumable_rows(run.path("verify.json"), args)
    rows = []
    for name, model in models.items():
        if name in done:
            rows.append(done[name])
            run.log(f"{name}: bracketed before with the same options and checkpoint "
                    "(verify.json); kept")
            continue
        t0 = time.perf_counter()
        run.log(f"{name}:")
        bracketed, fooled = bracket(model, x, y, args.eps, args, run.log)
        row = {"model": name, "n": len(x), **bracketed,
               "checkpoint": checkpoint_stamp(args.checkpoints, name)}
        if args.survivors:
            row["survivors"] = survivors(model, x, y, args.eps[-1], fooled, args, run.log)
        row["total_seconds"] = time.perf_counter() - t0
        rows.append(row)
        run.log(f"{name}: verified {[round(v, 1) for v in row['verified']]} %, "
                f"attacked {[round(a, 1) for a in row['attacked']]} % at eps {args.eps} "
                f"({row['total_seconds']:.0f} s)")
        others = [r for m, r in done.items() if m not in models]
        write_json(run.path("verify.json"), {"rows": rows + others, "options": vars(args)})
    table = format_table(rows)
    run.path("verify.md").write_text(table)
    run.log("\n" + table)
    if figure_verify(rows, run.path("verify.png")):
        run.log(f"figure {run.path('verify.png')}")
    return rows


if __name__ == "__main__":
    cli(main)
