"""Table 1: clean and FGSM test accuracy of nine models, {sigmoid MLP, ReLU MLP, CNN} x
{vanilla, adversarial (eq. 4), saturated (eqs. 6-8)}, beside the paper's numbers.

    python -m experiments.table1             # the nine models of experiments.lib.paper (RESULTS.md)
    python -m experiments.table1 --jobs 2    # two models at a time, one core each
    python -m experiments.table1 --quick     # smoke preset: small models, minutes on 2 CPUs
    python -m experiments.table1 --only cnn-saturated --set cnn-saturated.method.lam_max=1e-4
    python -m experiments.table1 --only relu_mlp --seeds 0 1 2   # each cell mean +- std over seeds
    python -m experiments.table1 --only saturated control --seeds 0 1 2   # the saturated models
                                                                            and their controls
    python -m experiments.table1 --list      # one command per model, for a scheduler

Each model (``experiments.lib.recipes``) is trained once into the run folder
(default runs/table1[-quick]) as <arch>-<training>.npz and reused, resumed or continued by its
recipe (``experiments.lib.store``). FGSM: eps = 0.25 with the true label, images clipped to [0, 1],
with the input gradient in each numerics mode: paper (float32 with TensorFlow's flush-to-zero),
float32 (numpy's) and stable (``experiments.lib.evaluation``). Writes config.json (the recipes among
it), table.json, table.md and log.txt.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from experiments.lib import paper, presets
from experiments.lib.cli import (UsageError, add_common_args, add_pool_args, cli, summary,
                                 parse)
from experiments.lib.runs import Run, run_dir, hardware, write_json
from experiments.lib.shipped import NAMES, SHIPPED
from experiments.lib.evaluation import aggregate
from experiments.lib.jobs import command, run_all
from experiments.lib.recipes import apply_set, select, set_value, table1_recipes
from experiments.lib.tables import format_table, train_and_evaluate
from nn.validate import check_eps, check_number


def eval_settings(quick, assignments):
    """The evaluation's settings (``paper.EVAL``, ``presets.EVAL``) with
    ``--set eval.<key>=value``."""
    ev = {**paper.EVAL, **(presets.EVAL if quick else {})}
    for a in assignments:
        key, _, raw = a.partition("=")
        ev = set_value(ev, key, key[len("eval."):], raw)
    check_eps(ev["eps"], "eval.eps")
    check_number("eval.n_test", ev["n_test"], minimum=1, maximum=10000, integer=True)
    check_number("eval.batch", ev["batch"], minimum=1, integer=True)
    return ev


def shipped_recipes(overrides, seeds):
    """The recipes the shipped regime MLPs stand in for: {name: the paper's recipe} for each shipped
    model that no --set changes, when the seeds are [0] (theirs); {} otherwise, and the models are
    trained by the recipes asked for."""
    if list(seeds) != [0]:
        return {}
    full = table1_recipes()
    changed = dict(full)
    for a in overrides:
        if not a.startswith("eval."):
            changed = apply_set(changed, a)
    return {n: full[n] for n in NAMES if changed[n] == full[n]}


def main(argv=None):
    """Train (or load) and evaluate the chosen models, write the table; with ``--list`` only print
    one command per model and seed. -> the table's rows (dicts of ``experiments.lib.evaluation``'s
    numbers)."""
    parser = add_common_args(argparse.ArgumentParser(description=summary(__doc__)))
    parser.add_argument("--only", nargs="*", default=None,
                        help="models: an architecture (cnn), a training (saturated) or "
                             "<arch>-<training>")
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help="train every model once per seed and report mean +- std (default: "
                             "--seed alone)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="change a recipe, --set <models>.<arch|train|method>.<key>=<value> "
                        "(experiments.lib.recipes), or the evaluation, --set eval.<key>=<value>")
    parser.add_argument("--sweep", default="runs/sweep",
                        help="sweep folder whose snapshots stand in for models of the same recipe "
                             "(default runs/sweep, with --quick runs/sweep-quick; "
                             "'none' to always train)")
    parser.add_argument("--shipped", action=argparse.BooleanOptionalAction, default=False,
                        help="the shipped regime MLPs (results/models) stand in for the saturated "
                             "MLPs at seed 0, at the paper's recipe, instead of training (default "
                             "with --quick, so that its analyses see the regime)")
    parser.add_argument("--controls", action="store_true",
                        help="also each saturated model's control: its recipe without the penalty")
    add_pool_args(parser, "models", "model and seed")
    args = parse(parser, argv, quick=presets.OPTIONS["table1"])
    seeds = args.seeds or [args.seed]
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds: each seed once, got {' '.join(map(str, seeds))}")
    recipes = table1_recipes(args.quick)
    for a in args.overrides:
        if not a.startswith("eval."):
            recipes = apply_set(recipes, a)
    if args.shipped:
        recipes.update(shipped_recipes(args.overrides, seeds))
    ev = eval_settings(args.quick, [a for a in args.overrides if a.startswith("eval.")])
    # --only control, --only relu_mlp-control
    asked = any(paper.CONTROL in o for o in args.only or [])
    names = select([n for n in recipes if asked or n in paper.MODELS], args.only)
    if args.controls:  # each chosen saturated model's control, after the paper's models
        names += [n.replace("-saturated", f"-{paper.CONTROL}") for n in names
                  if n.endswith("-saturated")
                  and n.replace("-saturated", f"-{paper.CONTROL}") not in names]
    for n in names:
        recipes[n].check()
    if args.list:  # commands only, on stdout: nothing is run or logged
        sweep = args.sweep if args.sweep == "none" else Path(args.sweep).resolve()
        opts = ["--out", run_dir("table1", args).resolve(), *(["--quick"] if args.quick else []),
                "--sweep", sweep, "--shipped" if args.shipped else "--no-shipped",
                *(x for a in args.overrides for x in ("--set", a))]
        for n in names:
            for s in seeds:
                print(command("table1", "--only", n, "--seeds", s, *opts, data_dir=args.data_dir))
        return []
    run = Run("table1", args, recipes={n: recipes[n].as_dict() for n in names})
    tasks = [{"recipe": recipes[n].as_dict(), "seed": s, "folder": str(run.dir),
              "data_dir": args.data_dir,
              "sweep": None if args.sweep == "none" else args.sweep,
              "shipped": str(SHIPPED) if args.shipped else None,
              "device": run.device, "eval": ev}
             for n in names for s in seeds]
    t0 = time.perf_counter()
    results = run_all(train_and_evaluate, tasks, args.jobs,
                      cost=[recipes[n].cost() for n in names for _ in seeds])
    rows = []
    for i, n in enumerate(names):
        per_seed = results[i * len(seeds):(i + 1) * len(seeds)]
        clean, fgsm = paper.TABLE1.get(n, (None, None))  # the controls are ours
        rows.append({"model": n, **aggregate(per_seed), "n_seeds": len(seeds), "seeds": seeds,
                     "per_seed": per_seed,
                     "paper_clean": clean, "paper_fgsm": fgsm,
                     "arch_kwargs": recipes[n].arch_kwargs})
    table, wall = format_table(rows), time.perf_counter() - t0
    run.log("\n" + table + f"\nwall time {wall:.0f} s on {hardware()}, device {run.device}, "
                           f"seeds {seeds}, jobs {args.jobs}")
    write_json(run.path("table.json"), {"rows": rows, "seeds": seeds, "device": run.device,
                                        "hardware": hardware(),
                                        "wall_seconds": wall, "jobs": args.jobs, "eval": ev})
    run.path("table.md").write_text(table)
    return rows


if __name__ == "__main__":
    cli(main)
