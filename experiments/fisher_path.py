"""Section 6, eqs. 10-13, Figure 4: along the straight path from the most confident test image of
class a to the most confident one of class b, for (a, b) in (1, 7), (3, 7), (6, 9), (0, 6): the
length element dl/dt = sqrt(v^T G^in v), v = x_b - x_a, with G^in = J^T (diag p - p p^T) J; the ten
softmax probabilities; and the singular values of the Jacobian J = dh^D/dx, all in float64 from the
float32 checkpoints.

    python -m experiments.fisher_path              # vanilla and saturated MLPs and CNN
    python -m experiments.fisher_path --models sigmoid_mlp-saturated --points 400

Headline numbers per path: the path length, peak / median of dl (flat with sharp peaks gives a large
value), and how many singular values inflate at the class transition (max along the path above 10x
their median). Writes paths.json, paths.npz and, with the plots extra, fisher_path.png.
"""
from __future__ import annotations

import argparse

import numpy as np

from analysis.fisher import path_geometry
from attacks.targeted import select_sources
from experiments.lib import presets
from experiments.lib.cli import (add_checkpoint_args, add_common_args, about, cli, summary, parse,
                                 count, load_models)
from experiments.lib.runs import Run, write_json
from experiments.lib.plotting import save_figure
from nn.backend import to_device
from nn.mnist import load_mnist

MODELS = ("sigmoid_mlp-vanilla", "sigmoid_mlp-saturated", "relu_mlp-vanilla", "relu_mlp-saturated",
          "cnn-vanilla", "cnn-saturated")
PAIRS = ((1, 7), (3, 7), (6, 9), (0, 6))


def summarise(g):
    """The headline numbers of one path, ``g`` = ``analysis.fisher.path_geometry``'s dict (dl (n,),
    sv (n, K), length): -> {"length", "dl_peak_over_median", "dl_median", "dl_max", "sv_max":
    floats; "inflated_singular_values": int, how many of the K singular values exceed 10 times their
    median along the path}."""
    dl, sv = g["dl"], g["sv"]
    med = np.median(sv, axis=0)
    return {"length": g["length"],
            "dl_peak_over_median": float(dl.max() / max(np.median(dl), 1e-300)),
            "dl_median": float(np.median(dl)), "dl_max": float(dl.max()),
            "inflated_singular_values": int((sv.max(axis=0) > 10 * np.maximum(med, 1e-300)).sum()),
            "sv_max": float(sv.max())}


def main(argv=None):
    """Measure dl/dt and the Jacobian's singular values along the paths between the most confident
    test images of each class pair in PAIRS (eqs. 10-13); write paths.json, paths.npz and
    fisher_path.png. -> {model: {"<a>-<b>": ``summarise``'s dict}}."""
    parser = add_checkpoint_args(add_common_args(argparse.ArgumentParser(
        description=summary(__doc__))), MODELS)
    parser.add_argument("--points", type=count, default=200,
                        help="points along each path (default 200)")
    args = parse(parser, argv, quick=presets.OPTIONS["fisher_path"])
    run = Run("fisher_path", args)
    models = load_models(args, run.xp, dtype=np.float64)
    x, y = load_mnist(args.data_dir)["test"]
    x64 = x.astype(np.float64)
    paths, arrays = {}, {}
    for name, model in models.items():
        with about(name):  # a user error raised for this model names it
            most = select_sources(model, to_device(x64, run.xp), to_device(y, run.xp))["most"]
            paths[name] = {}
            for a, b in PAIRS:
                g = path_geometry(model, to_device(x64[most[a]], run.xp),
                                  to_device(x64[most[b]], run.xp), args.points)
                key = f"{a}-{b}"
                paths[name][key] = summarise(g)
                for k in ("t", "p", "dl", "sv"):
                    arrays[f"{name}/{key}/{k}"] = g[k]
                run.log(f"{name} path {key}: {paths[name][key]}")
    write_json(run.path("paths.json"), paths)
    np.savez_compressed(run.path("paths.npz"), **arrays)

    def draw(axes):
        for r, name in enumerate(models):
            for c, (a, b) in enumerate(PAIRS):
                key = f"{name}/{a}-{b}"
                t = arrays[f"{key}/t"]
                axes[3 * r, c].plot(t, arrays[f"{key}/dl"])
                axes[3 * r, c].set_title(f"{name} {a}->{b}: dl/dt", fontsize=8)
                axes[3 * r + 1, c].plot(t, arrays[f"{key}/p"])
                axes[3 * r + 1, c].set_title("softmax p", fontsize=8)
                axes[3 * r + 2, c].semilogy(t, np.maximum(arrays[f"{key}/sv"], 1e-30))
                axes[3 * r + 2, c].set_title("singular values of J", fontsize=8)
    save_figure(run.path("fisher_path.png"), draw, (3 * len(models), len(PAIRS)),
                (4 * len(PAIRS), 2.2 * 3 * len(models)), dpi=100)
    return paths


if __name__ == "__main__":
    cli(main)
