"""Our APGD beside torchattacks' on the same weights: the robust accuracy of Table 1's models under
Auto-PGD (Croce & Hein 2020, Algorithm 1; ``attacks.apgd.APGD``) and under torchattacks'
APGD / APGDT (Kim 2020, the PyTorch implementation most users run), at each eps.

Three losses, ``--steps`` iterations and one start each, as AutoAttack's standard version uses them:
cross-entropy (APGD-CE), the difference of logits ratio (APGD-DLR) and the targeted DLR (APGD-T,
toward each of the 9 classes ranked highest after the true one). Ours runs on our analytic input
gradients in numpy's float32 (no flush-to-zero: the arithmetic of PyTorch's CPU kernels); theirs on
the PyTorch twin of the model (``experiments.lib.torch_twin``: the same weights) with autograd. The
report's last line gives the largest excess of ours over theirs, to be held at most 1 point
(``TOLERANCE``): an attack weaker than the reference would flatter the model.

    python -m experiments.tools.apgd_torchattacks     # the nine models of runs/table1, 500 images
    python -m experiments.tools.apgd_torchattacks --models relu_mlp-saturated --eps 0.1
        --n-test 1000

Needs PyTorch (the ``bench`` extra) and torchattacks (``INSTALL``). Each cell is written to
apgd_torchattacks.json as it is measured and reused by a rerun with the same steps, images and seed
from the same checkpoint (other models, radii and losses add cells); the table of this run's cells
goes to apgd_torchattacks.md: per model, eps and loss, ours, theirs and ours - theirs, in % of the
images.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from attacks.apgd import APGD
from experiments.lib import presets
from experiments.lib import torch_twin
from experiments.lib.cli import (UsageError, add_checkpoint_args, add_common_args, amount,
                                 checkpoint_stamp, cli, count, load_models, parse, result_options,
                                 summary)
from experiments.lib.runs import Run, write_json
from experiments.lib.paper import MODELS
from nn.mnist import load_mnist

LOSSES = ("ce", "dlr", "dlr-targeted")  # APGD-CE, APGD-DLR, APGD-T: AutoAttack's gradient attacks
TOLERANCE = 0.01  # ours may exceed theirs by at most this robust accuracy (1 point)
# torchattacks without its declared dependencies: its torchvision requirement would replace the
# installed PyTorch (the CPU wheel) by another; it imports and runs without torchvision
# options that choose cells, not what a cell means
CELL_KEYS = ("models", "eps", "losses", "checkpoints", "seed", "seeds")
INSTALL = ('pip install -e ".[bench]" && pip install --no-deps "torchattacks==3.5.1" && pip '
           'install tqdm requests')


def theirs(module, x, y, eps, steps, loss, seed):
    """torchattacks' robust accuracy on the PyTorch twin ``module``: APGD (loss "ce" or "dlr") or
    APGDT (loss "dlr-targeted", its default 9 target classes), L-inf, one start. x: (N, ...) float32
    in [0, 1], y: (N,) labels (host numpy) -> float in [0, 1]."""
    import torch
    import torchattacks
    if loss == "dlr-targeted":
        attack = torchattacks.APGDT(module, norm="Linf", eps=eps, steps=steps, n_restarts=1,
                                    seed=seed, n_classes=10)
    else:
        attack = torchattacks.APGD(module, norm="Linf", eps=eps, steps=steps, n_restarts=1,
                                   loss=loss, seed=seed)
    adv = attack(torch.from_numpy(x), torch.from_numpy(y))
    with torch.no_grad():
        return float((module(adv).argmax(1).numpy() == y).mean())


def ours(model, x, y, eps, steps, loss, seed):
    """Our APGD's robust accuracy, numpy float32, one start (``attacks.apgd.APGD``) -> float in
    [0, 1]."""
    return APGD(eps, steps=steps, loss=loss, numerics="float32",
                seed=seed)(model, x, y).robust_accuracy


def format_table(cells):
    """The Markdown table of the cells (model, eps, loss, seed, ours, theirs), accuracies in %."""
    lines = ["| model | eps | loss | seed | ours | torchattacks | ours - theirs |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for c in cells:
        excess = round(100 * (c["ours"] - c["theirs"]), 1) + 0.0  # + 0.0: no "-0.0"
        lines.append(f"| {c['model']} | {c['eps']:g} | {c['loss']} | {c['seed']} | "
                     f"{100 * c['ours']:.1f} | {100 * c['theirs']:.1f} | {excess:+.1f} |")
    worst = max((c["ours"] - c["theirs"] for c in cells), default=0.0)
    lines.append(f"\n(robust accuracy in % of the images; the largest excess of ours over theirs: "
                 f"{100 * worst:+.1f} points, allowed {100 * TOLERANCE:+.0f})\n")
    return "\n".join(lines)


def main(argv=None):
    """Run our APGD and torchattacks' on the same weights, per model, eps, loss and seed; write
    apgd_torchattacks.json and apgd_torchattacks.md. -> the cells, one dict each."""
    parser = add_checkpoint_args(add_common_args(argparse.ArgumentParser(
        description=summary(__doc__))), MODELS)
    parser.add_argument("--eps", nargs="+", type=amount, default=[0.05, 0.1, 0.25],
                        help="L-inf radii")
    parser.add_argument("--losses", nargs="+", choices=LOSSES, default=list(LOSSES))
    parser.add_argument("--steps", type=count, default=100,
                        help="iterations of each attack (default 100)")
    parser.add_argument("--n-test", type=count, default=500,
                        help="the first N test images (default 500)")
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help="random starts' seeds, one cell each (default: --seed): "
                             "the spread a single start has")
    args = parse(parser, argv, quick=presets.OPTIONS["apgd_torchattacks"])
    if not torch_twin.torch_available():
        raise UsageError(f"this comparison needs PyTorch and torchattacks: {INSTALL}")
    try:
        import torchattacks  # noqa: F401
    except ImportError:
        raise UsageError(f"this comparison needs torchattacks: {INSTALL}") from None
    run = Run("apgd_torchattacks", args)
    models = load_models(args, np)
    data = load_mnist(args.data_dir)
    x, y = data["test"][0][:args.n_test], data["test"][1][:args.n_test]
    path = run.path("apgd_torchattacks.json")
    # what every cell shares
    options = {k: v for k, v in result_options(args).items() if k not in CELL_KEYS}
    try:
        old = json.loads(path.read_text())
        kept = old["cells"] if old["options"] == options else []
    except (OSError, ValueError, KeyError):
        kept = []
    key = lambda c: (c["model"], c["eps"], c["loss"], c["seed"])  # noqa: E731
    done = {(*key(c), tuple(c["checkpoint"])): c for c in kept}
    cells = []
    for name, model in models.items():
        stamp = checkpoint_stamp(args.checkpoints, name)
        module = torch_twin.freeze(torch_twin.twin(model))
        for eps in args.eps:
            for loss in args.losses:
                for seed in args.seeds or [args.seed]:
                    cell = done.get((name, eps, loss, seed, tuple(stamp)))
                    if cell is None:
                        t0 = time.perf_counter()
                        a = ours(model, x, y, eps, args.steps, loss, seed)
                        t1 = time.perf_counter()
                        b = theirs(module, x, y, eps, args.steps, loss, seed)
                        cell = {"model": name, "eps": eps, "loss": loss, "seed": seed,
                                "ours": a, "theirs": b,
                                "checkpoint": stamp, "seconds_ours": t1 - t0,
                                "seconds_theirs": time.perf_counter() - t1}
                    cells.append(cell)
                    run.log(f"{name} eps {eps:g} {loss} seed {seed}: ours {100 * cell['ours']:.1f} "
                            f"%  torchattacks {100 * cell['theirs']:.1f} %  "
                            f"({cell['seconds_ours']:.0f} s / {cell['seconds_theirs']:.0f} s)")
                    # the cells of other models, radii, losses and seeds measured before stay; a
                    # cell measured again replaces its old one
                    fresh = {key(c) for c in cells}
                    write_json(path, {"options": options,
                                      "cells": cells + [c for c in kept if key(c) not in fresh]})
    table = format_table(cells)
    run.path("apgd_torchattacks.md").write_text(table)
    run.log("\n" + table)
    return cells


if __name__ == "__main__":
    cli(main)
