"""Beyond the paper: a gradient-masking audit of the nine Table 1 models.

For each model, on the first --n-test test images (--n-test-cnn for the CNNs, whose passes cost
~10x more on a CPU), at L-inf eps = --eps (0.25 by default, the paper's):

* FGSM with the cross-entropy in the paper's numerics (float32 with TensorFlow's flush-to-zero, what
  Table 1 reports), in the stable mode, in float64, and with the logit-margin loss;
* PGD (100 steps, 5 random restarts, worst case kept) with the cross-entropy in both modes and with
  the margin loss;
* APGD (Croce & Hein 2020, Algorithm 1; the same steps and restarts) with the cross-entropy in the
  paper's numerics and with the DLR loss in the stable mode, and APGD-T (the targeted DLR, stable,
  toward each of the 9 runner-up classes, one start each);
* the gradient-free Square attack (--square-queries forward passes per image);
* transfer: PGD examples made on the vanilla model of the same architecture;
* uniform random noise of the same size (the floor);

then the per-example worst case over the whole suite, the fraction of exactly-zero input gradients
per numeric mode, robust accuracy against eps from 0 to 1 (APGD, cross-entropy paper mode and DLR
stable mode, per-example worst: ``analysis.masking.suite.eps_sweep_attack``), and the named flags of
``analysis.masking.audit``.

    python -m experiments.beyond.audit                       # all nine models of runs/table1
    python -m experiments.beyond.audit --models sigmoid_mlp-saturated --n-test 10000
    python -m experiments.beyond.audit --device gpu --n-test 10000 --n-test-cnn 10000

Writes audit.json (everything), audit.md (the table) and, with the plots extra, eps_sweep.png.
audit.json is rewritten after each model: the same command, run again after an interruption, keeps
the models already audited with the same options (``resumable_rows``) and audits the rest.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from analysis.masking import audit
from analysis.masking.suite import (EPS_SWEEP, attack_suite, apgd_attacks, eps_sweep_attack,
                                    fooled_by, in_batches)
from attacks import FGSM, AttackResult
from attacks.pgd import PGD
from experiments.lib import presets
from experiments.lib.cli import (add_checkpoint_args, add_common_args, amount, checkpoint_stamp,
                                 cli, summary, parse, count, load_models, resumable_rows)
from experiments.lib.runs import Run, write_json
from experiments.lib.plotting import save_figure
from experiments.lib.paper import MODELS, TABLE1
from nn.backend import to_device, to_host
from nn.checkpoint import load_checkpoint
from nn.mnist import load_mnist

def audit_model(run, name, model, vanilla, x, y, args):
    """Every number of one model. x, y on the model's device."""
    t0 = time.perf_counter()
    fooled = {}
    for attack_name, attack in attack_suite(args.eps, args.pgd_steps, args.restarts,
                                            args.square_queries, args.seed).items():
        t = time.perf_counter()
        fooled[attack_name] = f = fooled_by(attack, model, x, y, args.batch)
        run.log(f"  {name} {attack_name}: {audit.accuracy(f):.1f} %  "
                f"({time.perf_counter() - t:.0f} s)")
    x64, m64 = x.astype(np.float64), model.astype(np.float64)
    fooled["fgsm-ce-stable-float64"] = fooled_by(FGSM(args.eps, numerics="stable"), m64, x64, y,
                                                 args.batch)
    if vanilla is not None:
        made_on_vanilla = PGD(eps=args.eps, steps=args.pgd_steps, restarts=1, seed=args.seed,
                              loss="margin", numerics="stable")

        def transfer(model, xb, yb):
            return AttackResult.of(model, xb, made_on_vanilla(vanilla, xb, yb).x_adv, yb)
        fooled["transfer"] = fooled_by(transfer, model, x, y, args.batch)
    accs = {k: audit.accuracy(v) for k, v in fooled.items()}
    worst = audit.worst_case(fooled)
    zero = {key: float(to_host(in_batches(
                lambda xb, yb: (audit.zero_gradient(mm, xb, yb, numerics=mode),),
                xx, y, args.batch)[0]).mean())
            for key, mm, xx, mode in [("paper", model, x, "paper"),
                                      ("float32", model, x, "float32"),
                                      ("stable", model, x, "stable"),
                                      ("stable-float64", m64, x64, "stable")]}
    eps_values = list(EPS_SWEEP)
    curve = audit.accuracy_curve(model, x, y, eps_values,
                                 eps_sweep_attack(args.sweep_steps, args.seed, args.batch))
    flags = audit.flags(accs, worst["accuracy"], zero["paper"], curve, eps_values)
    clean = audit.accuracy(in_batches(lambda xb, yb: (model.predict(xb) != yb,), x, y,
                                      args.batch)[0])
    return {"model": name, "n": int(len(x)), "clean": clean, "accuracy": accs,
            "worst": worst["accuracy"], "strongest": worst["strongest"], "unique": worst["unique"],
            "zero_gradient_fraction": zero, "eps": eps_values, "curve": curve, "flags": flags,
            "seconds": time.perf_counter() - t0}


def format_table(rows, eps):
    """Markdown: one line per audited model (``audit_model``'s rows): clean, Table 1's FGSM, our
    FGSM in the paper's numerics, the per-example worst case over the suite, the strongest attack
    and the flags; the footer names the suite's eps. -> str."""
    lines = ["| model | n | clean | paper FGSM | our FGSM (paper mode) | worst case "
             "| strongest attack | flags |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['n']} | {r['clean']:.1f} | "
                     f"{TABLE1[r['model']][1]:.2f} | {r['accuracy']['fgsm-ce-paper']:.1f} | "
                     f"{r['worst']:.1f} | {r['strongest']} | {', '.join(r['flags']) or '-'} |")
    return "\n".join(lines) + (f"\n\n(accuracies in %, L-inf eps = {eps:g}; paper FGSM: Table 1's, "
                               "at eps = 0.25; worst case: per-example minimum over the suite)\n")


def main(argv=None):
    """Audit the chosen models; write audit.json, audit.md and eps_sweep.png. -> the rows, one per
    model."""
    parser = add_checkpoint_args(
        add_common_args(argparse.ArgumentParser(description=summary(__doc__))), MODELS)
    parser.add_argument("--n-test", type=count, default=1000,
                        help="test images for the MLPs (default 1000)")
    parser.add_argument("--n-test-cnn", type=count, default=250,
                        help="test images for the CNNs (default 250)")
    parser.add_argument("--eps", type=amount, default=0.25)
    parser.add_argument("--pgd-steps", type=count, default=100)
    parser.add_argument("--restarts", type=count, default=5)
    parser.add_argument("--square-queries", type=count, default=1000)
    parser.add_argument("--sweep-steps", type=count, default=20,
                        help="APGD steps per attack and eps of the eps sweep (default 20)")
    parser.add_argument("--batch", type=count, default=250)
    args = parse(parser, argv, quick=presets.OPTIONS["audit"])
    # not an option: the attacks by name, saved with the options, so that rows of another suite are
    # not resumed
    suite = attack_suite(args.eps, args.pgd_steps, args.restarts, args.square_queries, args.seed)
    args.attacks = {"suite": list(suite),
                    "eps_sweep": list(apgd_attacks(args.eps, args.sweep_steps, 1, args.seed))}
    run = Run("audit", args)
    models = load_models(args, run.xp)  # --from checked before MNIST is read
    x_all, y_all = load_mnist(args.data_dir)["test"]
    done = resumable_rows(run.path("audit.json"), args)
    rows = []
    for name, model in models.items():
        if name in done:
            rows.append(done[name])
            run.log(f"{name}: audited before with the same options and checkpoint "
                    "(audit.json); kept")
            continue
        arch = name.split("-")[0]
        n = args.n_test_cnn if arch == "cnn" else args.n_test
        x, y = to_device(x_all[:n], run.xp), to_device(y_all[:n], run.xp)
        vanilla = None
        if not name.endswith("-vanilla"):
            vname = f"{arch}-vanilla"
            vanilla = models[vname] if vname in models else load_checkpoint(
                Path(args.checkpoints) / f"{vname}.npz", run.xp)[0]
        run.log(f"{name}: auditing on {n} test images")
        row = {**audit_model(run, name, model, vanilla, x, y, args),
               "checkpoint": checkpoint_stamp(args.checkpoints, name)}
        rows.append(row)
        run.log(f"{name}: clean {row['clean']:.1f} %, "
                f"FGSM (paper) {row['accuracy']['fgsm-ce-paper']:.1f} %, "
                f"worst case {row['worst']:.1f} % by {row['strongest']}; "
                f"zero gradients {row['zero_gradient_fraction']}; "
                f"eps sweep {[round(a, 1) for a in row['curve']]}; "
                f"flags {row['flags'] or 'none'} ({row['seconds']:.0f} s)")
        # audited before or meanwhile by another process on the same folder (other --models), not
        # asked for now: kept, read again just before writing
        others = [r for m, r in resumable_rows(run.path("audit.json"), args).items()
                  if m not in models]
        write_json(run.path("audit.json"), {"rows": rows + others, "options": vars(args),
                                            "flag_rules": audit.FLAG_RULES,
                                            "thresholds": audit.THRESHOLDS})
    table = format_table(rows, args.eps)
    run.path("audit.md").write_text(table)
    run.log("\n" + table)

    def draw(axes):
        ax = axes[0, 0]
        for r in rows:
            ax.plot(r["eps"], r["curve"], marker=".", label=r["model"])
        ax.set_xlabel("eps (L-inf)")
        ax.set_ylabel("robust accuracy %")
        ax.legend(fontsize=6)
    save_figure(run.path("eps_sweep.png"), draw)
    return rows


if __name__ == "__main__":
    cli(main)
