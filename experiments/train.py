"""Train and evaluate one model of Table 1 by its recipe (``experiments.lib.recipes``).

    python -m experiments.train relu_mlp-vanilla       # the recipe of experiments.lib.paper
    python -m experiments.train cnn-vanilla --quick    # the quick preset, about a minute on a CPU
    python -m experiments.train relu_mlp-saturated --set relu_mlp-saturated.method.lam_max=0
    python -m experiments.train sigmoid_mlp-vanilla --device gpu --set all.train.epochs=30

Writes into the run folder (default runs/train-<model>[-quick]): recipe.json, log.txt, model.npz
(the checkpoint, rewritten atomically after every epoch; the same command resumes or continues it)
and metrics.json (clean test accuracy and the training history). Table 1 trains the same models the
same way (``experiments.lib.store``) and adds the FGSM columns.
"""
from __future__ import annotations

import argparse

from experiments.lib import paper
from experiments.lib.cli import add_common_args, cli, summary, parse
from experiments.lib.runs import Run, hardware, write_json
from experiments.lib.recipes import apply_set, table1_recipes
from experiments.lib.store import train_or_load
from nn.mnist import load_mnist
from nn.train import accuracy


def main(argv=None):
    """Train one Table 1 model (or load it from its run folder) and measure its test accuracy; write
    recipe.json, model.npz and metrics.json. -> the test accuracy (a float in [0, 1])."""
    parser = add_common_args(argparse.ArgumentParser(description=summary(__doc__)))
    parser.add_argument("model", choices=paper.MODELS, help="<arch>-<training>")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="change the recipe: --set <model>.<arch|train|method>.<key>=<value>")
    args = parse(parser, argv)
    recipes = table1_recipes(args.quick)
    for a in args.overrides:
        recipes = apply_set(recipes, a)
    recipe = recipes[args.model].check()
    run = Run("train", args, default_dir=f"runs/train-{args.model}",
              recipes={args.model: recipe.as_dict()})
    write_json(run.path("recipe.json"), {"recipe": recipe.as_dict(), "seed": args.seed})
    data = load_mnist(args.data_dir)
    model, meta = train_or_load(recipe, args.seed, run.path("model.npz"), data, run.xp, run.log)
    test_acc = accuracy(model, *data["test"])
    history = meta.get("history", [])
    seconds = sum(h.get("seconds", 0.0) for h in history)
    run.log(f"{args.model}: test accuracy {100 * test_acc:.2f} %  (train time {seconds:.0f} s)")
    write_json(run.path("metrics.json"),
               {"model": args.model, "test_acc": test_acc, "train_seconds": seconds,
                "val_acc": history[-1]["val_acc"] if history else None,
                "hardware": hardware(), "device": run.device, "history": history})
    return test_acc


if __name__ == "__main__":
    cli(main)
