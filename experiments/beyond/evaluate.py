"""The regime, shipped: evaluate the two committed regime MLPs in about four minutes on two cores
(under one with --n-test 2000), without training.

    python -m experiments.beyond.evaluate                    # both shipped models, 10,000 test
                                                               images
    python -m experiments.beyond.evaluate --n-test 2000      # faster, on the first 2,000
    python -m experiments.beyond.evaluate --ship runs/table1  # (re)make results/models/ from a
                                                                main job

The shipped models (``results/models/``: the saturated sigmoid and ReLU MLPs of the main job,
784-200-200-10, weights only, each under 1 MB, loadable by ``nn.checkpoint.load_checkpoint``; their
SHA-256 in ``results/models/SHA256SUMS``, checked before use) carry in their meta the recipe, seed
and commit that trained them. Per model: clean accuracy, FGSM at eps = 0.25 in the three numerics
(paper, float32, stable), the share of test images whose input gradient is exactly 0 in the paper's
numerics, the logit margins (``experiments.lib.evaluation.evaluate``), and APGD's robust accuracy
(the worst of APGD-CE along the paper's gradient and APGD-DLR along the true one,
``analysis.masking.suite``). The masking shows at once: FGSM in the paper's numerics in the 90s, the
same attack along the true gradient far lower, APGD near 0. Writes evaluation.json; ``python -m
experiments.publish --record regime --from runs/evaluate`` makes it the record RESULTS renders.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from analysis.masking.suite import eps_sweep_attack, fooled_by
from experiments.lib import paper
from experiments.lib.cli import UsageError, add_common_args, cli, count, parse, summary
from experiments.lib.evaluation import evaluate, percent
from experiments.lib.shipped import NAMES, SHIPPED, check_shipped, sha256
from experiments.lib.runs import Run, read_json, write_json
from nn.backend import to_device
from nn.checkpoint import load_checkpoint, save_checkpoint
from nn.mnist import load_mnist

APGD_STEPS = 100  # APGD's iterations, one random start each loss


def ship(folder):
    """Copy the weights (no optimizer state) of the main job's regime MLPs from the run folder
    ``folder`` into results/models/, with the recipe, seed, training commit and source in their
    meta, and write SHA256SUMS. -> the paths written."""
    config = read_json(Path(folder) / "config.json", {})
    SHIPPED.mkdir(parents=True, exist_ok=True)
    written = []
    for name in NAMES:
        source = Path(folder) / f"{name}.npz"
        if not source.exists():
            raise UsageError(f"--ship {folder}: no {name}.npz; train it with "
                             f"`python -m experiments.table1 --only {name}`")
        model, meta = load_checkpoint(source)
        if not meta.get("complete"):
            raise UsageError(f"{source}: its training has not finished (epoch {meta.get('epoch')})")
        keep = {k: meta[k] for k in ("config", "epoch", "recipe", "seed", "key") if k in meta}
        save_checkpoint(SHIPPED / f"{name}.npz", model, **keep, source=str(source),
                        commit=config.get("commit"), command=config.get("command"))
        written.append(SHIPPED / f"{name}.npz")
    (SHIPPED / "SHA256SUMS").write_text("".join(f"{sha256(p)}  {p.name}\n" for p in written))
    return written


def main(argv=None):
    """Evaluate the shipped models (or ``--ship`` them from a run folder). -> the rows written."""
    parser = add_common_args(argparse.ArgumentParser(description=summary(__doc__)))
    parser.add_argument("--models", nargs="+", default=[str(SHIPPED / f"{n}.npz") for n in NAMES],
                        help="checkpoints to evaluate (default: the two shipped regime MLPs)")
    parser.add_argument("--n-test", type=count, default=10000,
                        help="test images (default 10000, all)")
    parser.add_argument("--batch", type=count, default=500)
    parser.add_argument("--ship", default=None, metavar="RUN",
                        help="first copy the regime MLPs of this main-job run folder into "
                             "results/models/")
    args = parse(parser, argv)
    if args.n_test > 10000:
        raise UsageError(f"--n-test {args.n_test}: MNIST has 10,000 test images")
    if args.ship:
        for p in ship(args.ship):
            print(p)
    for m in args.models:
        if not Path(m).is_file():
            raise UsageError(f"--models: no file {m}")
        check_shipped(m)
    run = Run("evaluate", args)
    x, y = (a[:args.n_test] for a in load_mnist(args.data_dir)["test"])
    t0, rows = time.perf_counter(), []
    for path in args.models:
        model, meta = load_checkpoint(path, run.xp)
        arch = model.spec["name"]
        run.log(f"{Path(path).stem}: clean accuracy, FGSM in three numerics and the zero-gradient "
                f"share on {len(x):,} test images, then APGD ({APGD_STEPS} steps, two losses)")
        r = evaluate(model, x, y, batch=args.batch, kinds=list(paper.PHI.get(arch, [])) or None)
        fooled = fooled_by(eps_sweep_attack(APGD_STEPS, args.seed, args.batch)(paper.FGSM_EPS),
                           model, to_device(x, run.xp), to_device(y, run.xp), args.batch)
        r["apgd"] = int((~fooled).sum()) / len(x)
        name = Path(path).stem
        rows.append({"model": name, "sha256": sha256(path), "commit": meta.get("commit"), **r})
        run.log(f"{name}: clean {100 * r['clean_acc']:.2f} %  "
                f"FGSM paper {100 * r['fgsm_paper']:.2f} %  "
                f"FGSM float32 {percent(r['fgsm_float32'], 2)} %  "
                f"FGSM stable {100 * r['fgsm_stable']:.2f} %  "
                f"APGD (worst of CE paper, DLR stable) {100 * r['apgd']:.2f} %  "
                f"exactly-zero gradients {100 * r['zero_grad_paper']:.1f} %  "
                f"median margin {r['margin_q'][2]:.1f}")
    write_json(run.path("evaluation.json"), {
        "rows": rows, "seed": args.seed, "device": run.device,
        "wall_seconds": time.perf_counter() - t0,
        "eval": {"n_test": args.n_test, "eps": paper.FGSM_EPS, "clip": paper.FGSM_CLIP,
                 "apgd_steps": APGD_STEPS}})
    run.log(f"wrote {run.path('evaluation.json')}; RESULTS.md's regime table is "
            "results/regime.json, made the same way")
    return rows


if __name__ == "__main__":
    cli(main)
