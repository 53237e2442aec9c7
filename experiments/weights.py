"""Section 5, Figures 1 and 2: weight histograms with their excess kurtosis, and histograms of the
pre-activations h^l over the 10,000 test images, vanilla vs saturated, with the fraction of
saturated units per layer (sigmoid: |h| > 15.9, where sigma' < 2^-23; ReLU: h <= 0).

    python -m experiments.weights            # the vanilla and saturated models of runs/table1
    python -m experiments.weights --models sigmoid_mlp-vanilla sigmoid_mlp-saturated

Writes stats.json (kurtosis, saturated fractions, ranges), hist.npz (counts and edges) and, with
the plots extra, weights.png and preactivations.png.
"""
from __future__ import annotations

import argparse

import numpy as np

from analysis.stats import excess_kurtosis, histogram, saturated_fraction, weight_layers
from experiments.lib.cli import (add_checkpoint_args, add_common_args, about, cli, summary, parse,
                                 load_models)
from experiments.lib.runs import Run, write_json
from experiments.lib.plotting import save_figure
from nn.backend import to_device, to_host
from nn.mnist import load_mnist

MODELS = ("sigmoid_mlp-vanilla", "sigmoid_mlp-saturated", "relu_mlp-vanilla", "relu_mlp-saturated",
          "cnn-vanilla", "cnn-saturated")


def layer_kind(model):
    """The saturation rule of a model's hidden units: 'sigmoid' if it has sigmoid layers, else
    'relu'."""
    return ("sigmoid" if any(layer["type"] == "sigmoid" for layer in model.spec["layers"])
            else "relu")


def preactivation_stats(model, x, n_bins=200, batch=1000):
    """Per weight layer: histogram of h^l over x (edges from the layer's own range), the fraction of
    saturated units (hidden layers; the readout's h^D is reported as 'readout'), min and max."""
    hs = None
    for i in range(0, len(x), batch):
        part = [to_host(h).reshape(h.shape[0], -1)
                for h in model.preactivations(to_device(x[i:i + batch], model.xp))]
        hs = part if hs is None else [np.concatenate([a, b]) for a, b in zip(hs, part)]
    kind = layer_kind(model)
    out = []
    for k, h in enumerate(hs):
        lo, hi = float(h.min()), float(h.max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1, n_bins + 1)
        readout = k == len(hs) - 1
        out.append({"layer": k + 1, "min": lo, "max": hi, "edges": edges,
                    "counts": histogram(h, edges),
                    "saturated": None if readout else saturated_fraction(h, kind)})
    return out


def main(argv=None):
    """Measure every weight layer's excess kurtosis and histogram and the pre-activations'
    histograms; write stats.json, hist.npz, weights.png and preactivations.png. -> {model:
    {"weights", "preactivations"}}."""
    parser = add_checkpoint_args(add_common_args(argparse.ArgumentParser(
        description=summary(__doc__))), MODELS)
    args = parse(parser, argv)
    run = Run("weights", args)
    models = load_models(args, run.xp)
    x = load_mnist(args.data_dir)["test"][0][: 1000 if args.quick else None]
    stats, arrays = {}, {}
    for name, model in models.items():
        with about(name):  # a user error raised for this model names it
            layers = []
            for k, (i, W) in enumerate(weight_layers(model)):
                w = to_host(W).ravel()
                edges = np.linspace(w.min(), w.max(), 201)
                (arrays[f"{name}/W{k + 1}/edges"],
                 arrays[f"{name}/W{k + 1}/counts"]) = edges, histogram(w, edges)
                layers.append({"layer": k + 1, "kurtosis": excess_kurtosis(w),
                               "std": float(w.std())})
            pre = preactivation_stats(model, x)
            for p in pre:
                (arrays[f"{name}/h{p['layer']}/edges"],
                 arrays[f"{name}/h{p['layer']}/counts"]) = p["edges"], p["counts"]
            stats[name] = {"weights": layers,
                           "preactivations": [
                               {k: p[k] for k in ("layer", "min", "max", "saturated")}
                               for p in pre]}
            run.log(f"{name}: weight excess kurtosis per layer "
                    f"{[round(l['kurtosis'], 2) for l in layers]}; saturated fraction per hidden "
                    f"layer {[p['saturated'] and round(p['saturated'], 3) for p in pre[:-1]]}; "
                    f"h ranges {[(round(p['min'], 1), round(p['max'], 1)) for p in pre]}")
    write_json(run.path("stats.json"), stats)
    np.savez_compressed(run.path("hist.npz"), **arrays)
    n_layers = max(len(s["weights"]) for s in stats.values())
    for what, title in (("W", "weights"), ("h", "preactivations")):
        def draw(axes, what=what):
            for r, name in enumerate(models):
                for c in range(n_layers):
                    key = f"{name}/{what}{c + 1}"
                    if f"{key}/counts" in arrays:
                        axes[r, c].stairs(arrays[f"{key}/counts"],
                                          arrays[f"{key}/edges"], fill=True)
                        axes[r, c].set_yscale("log")
                        extra = (f" kurtosis {stats[name]['weights'][c]['kurtosis']:.1f}"
                                 if what == "W" else "")
                        axes[r, c].set_title(f"{name} layer {c + 1}{extra}", fontsize=8)
        save_figure(run.path(f"{title}.png"), draw, (len(models), n_layers),
                    (4 * n_layers, 2.5 * len(models)), dpi=110)
    return stats


if __name__ == "__main__":
    cli(main)
