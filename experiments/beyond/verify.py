"""Beyond the paper: bracket each Table 1 model's robust accuracy between a proof and an attack.
For every model and eps, the share of test images proven robust by each verifier (lower
bounds): interval bound propagation (``analysis.proofs.ibp``, every model), linear relaxation (CROWN,
``analysis.proofs.crown``, the MLPs) and, for ReLU MLPs, the exact MILP (``analysis.proofs.milp``) on examples
that CROWN leaves open and the attack does not fool (at most --milp-max of them, --milp-time seconds
each); the share that survives the attack (the audit's eps-sweep attack,
``analysis.masking.suite.eps_sweep_attack``: per-example worst of APGD with the cross-entropy in the
paper's numerics and APGD with the DLR loss and stable derivatives, Croce & Hein 2020; MILP
counterexamples count as fooled too), an upper bound; and the undecided share between them. A
verified example that an attack fooled would be a bug: their number is reported (``contradictions``)
and must be 0.

    python -m experiments.beyond.verify                                   # the Table 1 models in runs/table1
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

import numpy as np

from analysis.proofs import crown, ibp, milp
from analysis.masking.suite import apgd_attacks, eps_sweep_attack
from experiments.lib import presets
from experiments.lib.cli import add_checkpoint_args, add_common_args, amount, checkpoint_stamp, cli, summary, parse, count, load_models, positive, resumable_rows
from experiments.lib.runs import Run, write_json
from experiments.lib.plotting import save_figure
from experiments.lib.paper import MODELS
from nn.backend import to_device, to_host
from nn.mnist import load_mnist

EPS = (0.01, 0.03, 0.1, 0.25)


def _verified_mask(fn, model, x, y, eps, batch):
    """(N,) host bool: examples the bound function fn(model, xb, yb, eps) verifies, in batches."""
    out = []
    for i in range(0, len(x), batch):
        xb, yb = to_device(x[i:i + batch], model.xp, model.dtype), to_device(y[i:i + batch], model.xp)
        out.append(to_host(fn(model, xb, yb, eps).verified))
    return np.concatenate(out).astype(bool)


def _pct(mask):
    return 100.0 * float(np.mean(mask))


def bracket(model, x, y, eps_values, args, log=print):
    """-> (one row: per eps the % verified by each method and by the best of them, the % surviving
    the attack, the undecided %, the MILP's tally, contradictions and seconds per method;
    (N,) host bool, the examples fooled at the largest eps)."""
    acts = crown.mlp_activations(model)
    mlp, relu = acts is not None, acts is not None and set(acts) == {"relu"}
    xd, yd = to_device(x, model.xp, model.dtype), to_device(y, model.xp)
    row = {"eps": list(eps_values), "methods": ["ibp"] + (["crown"] if mlp else []) + (["milp"] if relu else []),
           "verified_by": {}, "verified": [], "attacked": [], "undecided": [], "milp": [], "contradictions": [],
           "seconds": {"ibp": 0.0, "crown": 0.0, "milp": 0.0, "attack": 0.0}}
    fooled = np.zeros(len(x), bool)
    make_attack = eps_sweep_attack(args.sweep_steps, args.seed, args.batch)
    for e in eps_values:
        t = time.perf_counter()
        fooled |= to_host(make_attack(float(e))(model, xd, yd).success).astype(bool)  # fooled at e is fooled above
        row["seconds"]["attack"] += time.perf_counter() - t
        t = time.perf_counter()
        proven = {"ibp": _verified_mask(ibp.interval_bounds, model, x, y, e, args.batch)}
        row["seconds"]["ibp"] += time.perf_counter() - t
        if mlp:
            t = time.perf_counter()
            proven["crown"] = _verified_mask(crown.linear_bounds, model, x, y, e, args.crown_batch) | proven["ibp"]
            row["seconds"]["crown"] += time.perf_counter() - t
        tally = None
        if relu:
            t = time.perf_counter()
            proven["milp"] = proven["crown"].copy()
            open_ = np.where(~proven["crown"] & ~fooled)[0][:args.milp_max]
            tally = {"tried": int(len(open_)), "verified": 0, "falsified": 0, "unknown": 0}
            for i in open_:
                v = milp.verify_example(model, xd[i:i + 1], yd[i:i + 1], float(e), time_limit=args.milp_time,
                                        max_binaries=args.milp_max_binaries)
                tally[v.status] += 1
                proven["milp"][i] = v.status == "verified"
                fooled[i] |= v.status == "falsified"
            row["seconds"]["milp"] += time.perf_counter() - t
        best = np.any(list(proven.values()), axis=0)
        for k, v in proven.items():
            row["verified_by"].setdefault(k, []).append(_pct(v))
        row["verified"].append(_pct(best))
        row["attacked"].append(_pct(~fooled))
        row["undecided"].append(row["attacked"][-1] - row["verified"][-1])
        row["milp"].append(tally)
        row["contradictions"].append(int((best & fooled).sum()))
        log(f"  eps {e}: verified " + ", ".join(f"{k} {_pct(v):.1f}" for k, v in proven.items())
            + f" %; attacked {_pct(~fooled):.1f} %" + (f"; MILP {tally}" if tally else "")
            + f"; contradictions {row['contradictions'][-1]}")
    return row, fooled


def survivors(model, x, y, eps, fooled, args, log=print):
    """The first args.survivors images not ``fooled`` at eps ((N,) bool from ``bracket``), through
    IBP, CROWN and the MILP: per image its index, label, each method's lower bound of
    min_j (z_y - z_j) (positive = proven), the MILP's verdict and binaries. -> list of dicts."""
    xd, yd = to_device(x, model.xp, model.dtype), to_device(y, model.xp)
    out = []
    acts = crown.mlp_activations(model)
    for i in np.where(~fooled)[0][:args.survivors]:
        xb, yb = xd[i:i + 1], yd[i:i + 1]
        ib = ibp.interval_bounds(model, xb, yb, eps)
        rec = {"index": int(i), "label": int(y[i]), "ibp_bound": float(to_host(ib.diff_lower).min())}
        if acts is not None:
            lb = crown.linear_bounds(model, xb, yb, eps)
            rec["crown_bound"] = float(to_host(lb.diff_lower).min())
            rec["unstable_units"] = [int(to_host((lo < 0) & (hi > 0)).sum()) for lo, hi in lb.pre]
            if set(acts) == {"relu"}:
                v = milp.verify_example(model, xb, yb, eps, time_limit=args.milp_time, bounds=lb)
                rec.update(milp=v.status, milp_bound=v.bound, binaries=v.binaries, milp_seconds=v.seconds)
        out.append(rec)
        log(f"  survivor {rec}")
    return out


def format_table(rows):
    lines = ["| model | n | " + " | ".join(f"eps {e}: verified (IBP / CROWN / MILP) / attacked" for e in rows[0]["eps"])
             + " |", "| --- | --- |" + " --- |" * len(rows[0]["eps"])]
    for r in rows:
        cells = []
        for k in range(len(r["eps"])):
            v = " / ".join(f"{r['verified_by'][m][k]:.1f}" if m in r["verified_by"] else "-"
                           for m in ("ibp", "crown", "milp"))
            cells.append(f"{v} / {r['attacked'][k]:.1f}")
        lines.append(f"| {r['model']} | {r['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + (
        "\n\n(% of the test images proven robust by interval bound propagation / by linear relaxation (CROWN, "
        "MLPs) / with the exact MILP on CROWN's open examples (ReLU MLPs, capped by --milp-max) / surviving the "
        "per-example worst of APGD-CE and APGD-DLR and the MILP's counterexamples; the true robust accuracy lies "
        "between the largest verified share and the attacked one; '-': the method does not apply)\n")


def main(argv=None):
    parser = add_checkpoint_args(add_common_args(argparse.ArgumentParser(description=summary(__doc__))),
                                 MODELS)
    parser.add_argument("--eps", type=amount, nargs="+", default=list(EPS))
    parser.add_argument("--n-test", type=count, default=2000, help="test images per model (default 2000)")
    parser.add_argument("--sweep-steps", type=count, default=100, help="APGD steps per attack and eps (default 100)")
    parser.add_argument("--batch", type=count, default=250)
    parser.add_argument("--crown-batch", type=count, default=20, help="examples per CROWN pass (memory)")
    parser.add_argument("--milp-max", type=count, default=20, help="examples per model and eps for the MILP")
    parser.add_argument("--milp-time", type=positive, default=60.0, help="seconds per example for the MILP")
    parser.add_argument("--milp-max-binaries", type=count, default=300,
                        help="skip the MILP for an example with more unstable units than this (default 300)")
    parser.add_argument("--survivors", type=count, default=None,
                        help="survivors at the largest eps to examine (the MILP then has no --milp-max-binaries)")
    args = parse(parser, argv, quick=presets.OPTIONS["verify"])
    args.eps = sorted(args.eps)
    # not an option: the upper bound's attacks by name, saved with the options, so that rows of another are not resumed
    args.attacks = list(apgd_attacks(args.eps[0], args.sweep_steps, 1, args.seed))
    run = Run("verify", args)
    models = load_models(args, run.xp)  # --from checked before MNIST is read
    x, y = (a[:args.n_test] for a in load_mnist(args.data_dir)["test"])
    done = resumable_rows(run.path("verify.json"), args)
    rows = []
    for name, model in models.items():
        if name in done:
            rows.append(done[name])
            run.log(f"{name}: bracketed before with the same options and checkpoint (verify.json); kept")
            continue
        t0 = time.perf_counter()
        run.log(f"{name}:")
        bracketed, fooled = bracket(model, x, y, args.eps, args, run.log)
        row = {"model": name, "n": len(x), **bracketed, "checkpoint": checkpoint_stamp(args.checkpoints, name)}
        if args.survivors:
            row["survivors"] = survivors(model, x, y, args.eps[-1], fooled, args, run.log)
        row["total_seconds"] = time.perf_counter() - t0
        rows.append(row)
        run.log(f"{name}: verified {[round(v, 1) for v in row['verified']]} %, attacked "
                f"{[round(a, 1) for a in row['attacked']]} % at eps {args.eps} ({row['total_seconds']:.0f} s)")
        others = [r for m, r in done.items() if m not in models]
        write_json(run.path("verify.json"), {"rows": rows + others, "options": vars(args)})
    table = format_table(rows)
    run.path("verify.md").write_text(table)
    run.log("\n" + table)

    def draw(axes):
        for ax, r in zip(axes.ravel(), rows):
            ax.fill_between(r["eps"], r["verified"], r["attacked"], color="0.85", label="undecided")
            ax.plot(r["eps"], r["attacked"], marker="o", color="C3", label="attacked (upper bound)")
            for m, mark in zip(r["methods"], "s^D"):
                ax.plot(r["eps"], r["verified_by"][m], marker=mark, label=f"verified by {m.upper()} (lower bound)")
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
