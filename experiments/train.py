"""Train and evaluate one of the paper's three vanilla architectures on MNIST.

    python -m experiments.train --arch relu_mlp            # full preset
    python -m experiments.train --arch cnn --quick         # smoke run, about a minute on a CPU
    python -m experiments.train --arch sigmoid_mlp --device gpu --epochs 30

Writes into the run folder (default runs/train-<arch>[-quick]): config.json, log.txt, model.npz
(the checkpoint, rewritten atomically after every epoch) and metrics.json (clean test accuracy).
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from experiments.common import Run, add_common_args, cli, count, hardware, positive, write_json
from nn.architectures import ARCHITECTURES, build_spec
from nn.mnist import load_mnist
from nn.model import Sequential
from nn.train import TrainConfig, accuracy, train

# Settings per architecture (the paper's: Adam, batch 128 as in TensorFlow's MNIST tutorials);
# epochs and learning-rate decay chosen to reach the paper's clean accuracy.
PRESETS = {
    "sigmoid_mlp": {"arch": {"hidden": 1000}, "train": {"epochs": 20, "lr": 1e-3, "lr_decay": 0.9}},
    "relu_mlp": {"arch": {"hidden": 1000}, "train": {"epochs": 20, "lr": 1e-3, "lr_decay": 0.9}},
    "cnn": {"arch": {}, "train": {"epochs": 15, "lr": 1e-3, "lr_decay": 0.8}},
}
QUICK = {"sigmoid_mlp": {"arch": {"hidden": 256}, "train": {"epochs": 1, "max_train": 10000}},
         "relu_mlp": {"arch": {"hidden": 256}, "train": {"epochs": 1, "max_train": 10000}},
         "cnn": {"arch": {}, "train": {"epochs": 1, "max_train": 2000}}}


def resolve_config(args):
    """Defaults < preset (< quick preset) < command-line overrides -> (arch kwargs, TrainConfig)."""
    preset = QUICK[args.arch] if args.quick else PRESETS[args.arch]
    arch_kw = dict(PRESETS[args.arch]["arch"], **preset["arch"])
    if args.hidden is not None:
        arch_kw["hidden"] = args.hidden
    train_kw = dict(PRESETS[args.arch]["train"], **preset["train"], seed=args.seed)
    for name in ("epochs", "lr", "lr_decay", "batch_size", "max_train"):
        if getattr(args, name) is not None:
            train_kw[name] = getattr(args, name)
    return arch_kw, TrainConfig(**train_kw)


def main(argv=None):
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="relu_mlp")
    parser.add_argument("--hidden", type=count, default=None, help="hidden width (MLPs) or FC width (CNN)")
    parser.add_argument("--epochs", type=count, default=None)
    parser.add_argument("--lr", type=positive, default=None)
    parser.add_argument("--lr-decay", dest="lr_decay", type=positive, default=None)
    parser.add_argument("--batch-size", dest="batch_size", type=count, default=None)
    parser.add_argument("--max-train", dest="max_train", type=count, default=None)
    args = parser.parse_args(argv)
    run = Run("train", args, default_dir=f"runs/train-{args.arch}")

    arch_kw, cfg = resolve_config(args)
    spec = build_spec(args.arch, **arch_kw)
    write_json(run.path("config.json"), {"arch": args.arch, "arch_kwargs": arch_kw, "spec": spec,
                                         "train": dataclasses.asdict(cfg), "device": run.device})
    data = load_mnist(args.data_dir)
    model = Sequential.init(spec, seed=cfg.seed, dtype=np.float32, xp=run.xp)
    run.log(f"{args.arch}: {sum(v.size for p in model.params for v in p.values()):,} parameters; {cfg}")
    t0 = time.perf_counter()
    history = train(model, data, cfg, log=run.log, checkpoint=run.path("model.npz"),
                    checkpoint_meta={"arch": args.arch})
    wall = time.perf_counter() - t0
    test_acc = accuracy(model, *data["test"])
    run.log(f"{args.arch}: test accuracy {100 * test_acc:.2f} %  (train time {wall:.0f} s)")
    write_json(run.path("metrics.json"), {"arch": args.arch, "test_acc": test_acc,
                                          "val_acc": history[-1]["val_acc"], "train_seconds": wall,
                                          "hardware": hardware(), "device": run.device, "history": history})
    return test_acc


if __name__ == "__main__":
    cli(main)
