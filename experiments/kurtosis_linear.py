"""Section 8, Figure 6: the robustness ratio R = ||w1||^2 / (||w2 - w1||_1 mean|w1|) of a linear
read-out with unit-norm random templates of dimension 20,000, against the excess kurtosis gamma_2 of
their i.i.d. Pearson type VII entries (gamma_2 = 0: Gaussian baseline), with error bars over draws;
and the same ratio with entries drawn by inverse-transform sampling from the learned weights of each
layer of vanilla and saturated MLPs.

    python -m experiments.kurtosis_linear
    python -m experiments.kurtosis_linear --draws 1000
        --models sigmoid_mlp-vanilla sigmoid_mlp-saturated

Writes ratios.json and, with the plots extra, kurtosis_linear.png.
"""
from __future__ import annotations

import argparse

from analysis.kurtosis import empirical_sampler, ratio_statistics, sample_pearson7
from analysis.stats import excess_kurtosis, weight_layers
from experiments.lib import presets
from experiments.lib.cli import (add_checkpoint_args, add_common_args, about, cli, summary, parse,
                                 count, load_models)
from experiments.lib.runs import Run, write_json
from experiments.lib.plotting import save_figure

MODELS = ("sigmoid_mlp-vanilla", "sigmoid_mlp-saturated", "relu_mlp-vanilla", "relu_mlp-saturated")
GAMMAS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)


def main(argv=None):
    """Measure the linear read-out's ratio R for Pearson VII weights and for every learned weight
    layer (section 8); write ratios.json and kurtosis_linear.png. -> {"dim", "draws", "pearson7",
    "learned"}."""
    parser = add_checkpoint_args(add_common_args(argparse.ArgumentParser(
        description=summary(__doc__))), MODELS)
    parser.add_argument("--draws", type=count, default=200,
                        help="template pairs per point (default 200)")
    parser.add_argument("--dim", type=count, default=20000)
    args = parse(parser, argv, quick=presets.OPTIONS["kurtosis_linear"])
    run = Run("kurtosis_linear", args)
    draws = args.draws
    out = {"dim": args.dim, "draws": draws, "pearson7": [], "learned": {}}
    for g in GAMMAS:
        m, s = ratio_statistics(lambda size, rng: sample_pearson7(g, size, rng), args.dim,
                                draws, args.seed)
        out["pearson7"].append({"gamma2": g, "mean": m, "std": s})
    base = out["pearson7"][0]["mean"]
    for row in out["pearson7"]:
        row["rise"] = row["mean"] / base - 1
        run.log(f"Pearson VII gamma_2 {row['gamma2']:5.2f}: R = {row['mean']:.4f} +- "
                f"{row['std']:.4f} ({100 * row['rise']:+.1f} % over the Gaussian)")
    for name, model in load_models(args, run.xp).items():
        with about(name):  # a user error raised for this model names it
            out["learned"][name] = []
            for k, (_, W) in enumerate(weight_layers(model)):
                m, s = ratio_statistics(empirical_sampler(W), args.dim, draws, args.seed)
                row = {"layer": k + 1, "kurtosis": excess_kurtosis(W), "mean": m, "std": s,
                       "rise": m / base - 1}
                out["learned"][name].append(row)
                run.log(f"{name} layer {k + 1}: kurtosis {row['kurtosis']:.2f}, "
                        f"R = {m:.4f} +- {s:.4f} ({100 * row['rise']:+.1f} % over the Gaussian)")
    write_json(run.path("ratios.json"), out)

    def draw(axes):
        ax = axes[0, 0]
        p7 = out["pearson7"]
        ax.errorbar([r["gamma2"] for r in p7], [r["mean"] for r in p7], [r["std"] for r in p7],
                    marker="o", label="Pearson VII")
        for name, rows in out["learned"].items():
            ax.errorbar([r["kurtosis"] for r in rows], [r["mean"] for r in rows],
                        [r["std"] for r in rows], marker="s", ls="", label=name)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlabel("excess kurtosis gamma_2")
        ax.set_ylabel("R")
        ax.legend(fontsize=7)
    save_figure(run.path("kurtosis_linear.png"), draw, figsize=(5, 3.5))
    return out


if __name__ == "__main__":
    cli(main)
