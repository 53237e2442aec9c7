"""Eq. 9, Figures 3 and 7: representational dissimilarity matrices of every layer, vanilla vs
saturated: 100 random test images per class (1000, sorted by class),
d(a, b) = mean_i (phi(h_i^{l,a}) - phi(h_i^{l,b}))^2, and per layer the ratio of mean between-class
to mean within-class dissimilarity.

    python -m experiments.rdm                      # the six vanilla / saturated Table 1 models
    python -m experiments.rdm --models sigmoid_mlp-vanilla sigmoid_mlp-saturated --per-class 50

Writes ratios.json, rdm.npz (float32 matrices, key <model>/layer<l>) and, with the plots extra,
rdm.png.
"""
from __future__ import annotations

import argparse

import numpy as np

from analysis.rdm import between_within_ratio, rdm, sample_per_class
from experiments.lib import presets
from experiments.lib.cli import (add_checkpoint_args, add_common_args, about, cli, summary, parse,
                                 count, load_models)
from experiments.lib.runs import Run, write_json
from experiments.lib.plotting import save_figure
from nn import layers as L
from nn.backend import to_device, to_host
from nn.mnist import load_mnist

MODELS = ("sigmoid_mlp-vanilla", "sigmoid_mlp-saturated", "relu_mlp-vanilla", "relu_mlp-saturated",
          "cnn-vanilla", "cnn-saturated")


def representations(model, x):
    """phi(h^l) of every weight layer, flattened: the hidden layers through their activation
    (the layer that follows h^l in the spec), the readout as the logits h^D.  -> list of
    (M, n_l)."""
    logits, caches, hs = model.forward(x)
    layers = model.spec["layers"]
    weight_idx = [i for i, layer in enumerate(layers) if layer["type"] in ("dense", "conv2d")]
    reps = []
    for k, (i, h) in enumerate(zip(weight_idx, hs)):
        act = layers[i + 1]["type"] if i + 1 < len(layers) else None
        r = L.sigmoid(h) if act == "sigmoid" else L.relu_forward(h)[0] if act == "relu" else h
        reps.append(r.reshape(len(r), -1))
    return reps


def main(argv=None):
    """Compute every layer's RDM (eq. 9) on --per-class test images per class and its between/within
    ratio; write ratios.json, rdm.npz and rdm.png. -> {model: [ratio per layer]}."""
    parser = add_checkpoint_args(add_common_args(argparse.ArgumentParser(
        description=summary(__doc__))), MODELS)
    parser.add_argument("--per-class", type=count, default=100,
                        help="images per class (default 100)")
    args = parse(parser, argv, quick=presets.OPTIONS["rdm"])
    run = Run("rdm", args)
    models = load_models(args, run.xp)
    x, y = load_mnist(args.data_dir)["test"]
    idx = sample_per_class(y, args.per_class, seed=args.seed)
    labels = y[idx]
    ratios, mats = {}, {}
    for name, model in models.items():
        with about(name):  # a user error raised for this model names it
            reps = representations(model, to_device(x[idx], run.xp))
            ratios[name] = []
            for k, r in enumerate(reps):
                D = rdm(r)
                ratios[name].append(between_within_ratio(D, to_device(labels, run.xp)))
                mats[f"{name}/layer{k + 1}"] = to_host(D, np.float32)
            run.log(f"{name}: between/within dissimilarity per layer "
                    f"{[round(v, 2) for v in ratios[name]]}")
    write_json(run.path("ratios.json"), {"ratios": ratios, "indices": idx.tolist(),
                                         "labels": labels.tolist()})
    np.savez_compressed(run.path("rdm.npz"), **mats)
    n_layers = max(len(v) for v in ratios.values())

    def draw(axes):
        for r, name in enumerate(models):
            for c in range(len(ratios[name])):
                D = mats[f"{name}/layer{c + 1}"]
                axes[r, c].imshow(D / max(D.max(), 1e-30), cmap="viridis")
                axes[r, c].set_title(f"{name} l{c + 1}: {ratios[name][c]:.2f}", fontsize=8)
                axes[r, c].axis("off")
    save_figure(run.path("rdm.png"), draw, (len(models), n_layers),
                (3 * n_layers, 3 * len(models)), dpi=110)
    return ratios


if __name__ == "__main__":
    cli(main)
