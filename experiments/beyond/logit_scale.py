"""Beyond the paper: the logit-scaling probe. FGSM "robustness" made from arithmetic alone.

Multiplying a network's readout by c (``analysis.masking.audit.scale_logits``) changes no
prediction, yet once c times the logit margin passes ~104 the float32 softmax of the cross-entropy
rounds to a one-hot vector and the loss's input gradient is exactly 0: FGSM (eq. 3, sign(0) = 0)
leaves the image where it is. This is the mechanism Brendel & Bethge (2017) proposed for the paper's
Table 1. For each model and each c, on the first --n-test test images (--n-test-cnn for the CNNs):

* clean accuracy (must not change with c);
* FGSM at eps = 0.25 with the cross-entropy in the paper's float32 mode, in the stable mode and in
  float64, and with the logit-margin loss (scale-invariant: its accuracy must not change either);
* the fraction of examples whose input gradient is exactly 0 in the paper's mode;
* the logit margin's median (at c = 1), which predicts where the paper-mode FGSM starts to fail.

    python -m experiments.beyond.logit_scale                    # all nine models of runs/table1
    python -m experiments.beyond.logit_scale --models sigmoid_mlp-vanilla --scales 1 10 100

Writes logit_scale.json and logit_scale.md into the run folder and, with the plots extra,
logit_scale.png (FGSM accuracy against c, cross-entropy in paper mode and margin loss).
"""
from __future__ import annotations

import argparse

import numpy as np

from analysis.masking import audit
from analysis.masking.suite import fooled_by, in_batches
from attacks import FGSM
from attacks.losses import margin
from experiments.lib import presets
from experiments.lib.cli import (add_checkpoint_args, add_common_args, amount, cli, summary, parse,
                                 count, load_models, positive)
from experiments.lib.runs import Run, write_json
from experiments.lib.plotting import save_figure
from experiments.lib.paper import MODELS
from nn.backend import to_device, to_host
from nn.mnist import load_mnist

SCALES = (1, 2, 4, 8, 16, 32, 64, 128)  # powers of two: c z is exact in floating point
ATTACKS = {"fgsm-ce-float32": ("ce", "float32", False), "fgsm-ce-stable": ("ce", "stable", False),
           "fgsm-ce-stable-float64": ("ce", "stable", True),
           "fgsm-margin-stable": ("margin", "stable", False)}


def logit_margin(model, x, y, batch):
    """(N,) host float64: z_y - max_{j != y} z_j, the true logit's lead (negative: misclassified),
    i.e. minus the margin loss of ``attacks.losses``."""
    return -to_host(in_batches(lambda xb, yb: (margin(model.logits(xb), yb)[0],), x, y,
                               batch)[0]).astype(np.float64)


def probe(model, x, y, scales, eps, batch):
    """Every number of one model at every scale. -> list of dicts, one per c."""
    x64 = x.astype(np.float64)
    rows = []
    for c in scales:
        m = audit.scale_logits(model, c)
        m64 = m.astype(np.float64)
        clean = audit.accuracy(in_batches(lambda xb, yb: (m.predict(xb) != yb,), x, y, batch)[0])
        accs = {}
        for name, (loss, numerics, f64) in ATTACKS.items():
            accs[name] = audit.accuracy(fooled_by(FGSM(eps, loss=loss, numerics=numerics),
                                                  m64 if f64 else m, x64 if f64 else x, y, batch))
        zero = in_batches(lambda xb, yb: (audit.zero_gradient(m, xb, yb),), x, y, batch)[0]
        rows.append({"scale": c, "clean": clean, "accuracy": accs,
                     "zero_gradient_fraction": float(to_host(zero).mean())})
    return rows


def format_table(results, eps):
    """Markdown: per model (``main``'s results), one line per logit scale c: clean accuracy, FGSM
    accuracy per loss and numerics, and the share of exactly-zero input gradients; the footer names
    the eps FGSM ran at. -> str."""
    lines = ["| model | median margin | c | clean | FGSM CE float32 | FGSM CE stable | "
             "FGSM CE stable float64 | FGSM margin | exact-zero gradients |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        for i, s in enumerate(r["scales"]):
            a = s["accuracy"]
            head = f"| {r['model']} | {r['median_margin']:.1f}" if i == 0 else "| |"
            lines.append(f"{head} | {s['scale']:g} | {s['clean']:.1f} | "
                         f"{a['fgsm-ce-float32']:.1f} | {a['fgsm-ce-stable']:.1f} | "
                         f"{a['fgsm-ce-stable-float64']:.1f} | {a['fgsm-margin-stable']:.1f} | "
                         f"{100 * s['zero_gradient_fraction']:.1f} % |")
    return ("\n".join(lines) + f"\n\n(accuracies in %, FGSM at L-inf eps = {eps:g}; "
                               "c multiplies the logits)\n")


def main(argv=None):
    """Probe FGSM against the logit scale c on the chosen models; write logit_scale.json, .md and
    .png. -> the results, one dict per model."""
    parser = add_checkpoint_args(add_common_args(argparse.ArgumentParser(
        description=summary(__doc__))), MODELS)
    parser.add_argument("--scales", type=positive, nargs="+", default=list(SCALES),
                        help="logit scales c")
    parser.add_argument("--n-test", type=count, default=2000,
                        help="test images for the MLPs (default 2000)")
    parser.add_argument("--n-test-cnn", type=count, default=500,
                        help="test images for the CNNs (default 500)")
    parser.add_argument("--eps", type=amount, default=0.25)
    parser.add_argument("--batch", type=count, default=250)
    args = parse(parser, argv, quick=presets.OPTIONS["logit_scale"])
    run = Run("logit_scale", args)
    models = load_models(args, run.xp)  # --from checked before MNIST is read
    x_all, y_all = load_mnist(args.data_dir)["test"]
    results = []
    for name, model in models.items():
        n = args.n_test_cnn if name.startswith("cnn") else args.n_test
        x, y = to_device(x_all[:n], run.xp), to_device(y_all[:n], run.xp)
        margin = logit_margin(model, x, y, args.batch)
        rows = probe(model, x, y, args.scales, args.eps, args.batch)
        results.append({"model": name, "n": n, "median_margin": float(np.median(margin)),
                        "scales": rows})
        for s in rows:
            run.log(f"{name} c = {s['scale']:g}: clean {s['clean']:.1f} %, "
                    + ", ".join(f"{k} {v:.1f} %" for k, v in s["accuracy"].items())
                    + f", exact-zero gradients {100 * s['zero_gradient_fraction']:.1f} %")
        write_json(run.path("logit_scale.json"), {"results": results, "options": vars(args)})
    table = format_table(results, args.eps)
    run.path("logit_scale.md").write_text(table)
    run.log("\n" + table)
    save_figure(run.path("logit_scale.png"), lambda axes: draw(axes[0, 0], results, args.eps))
    return results


def draw(ax, results, eps):
    """FGSM accuracy against the logit scale: cross-entropy in paper mode (solid), margin
    (dashed)."""
    for r in results:
        c = [s["scale"] for s in r["scales"]]
        line, = ax.plot(c, [s["accuracy"]["fgsm-ce-float32"] for s in r["scales"]], marker=".",
                        label=r["model"])
        ax.plot(c, [s["accuracy"]["fgsm-margin-stable"] for s in r["scales"]], ls="--",
                color=line.get_color())
    ax.set_xscale("log", base=2)
    ax.set_xlabel("logit scale c (predictions unchanged)")
    ax.set_ylabel(f"FGSM accuracy % (eps = {eps:g})")
    ax.set_title("cross-entropy, float32 (solid) vs margin loss (dashed)", fontsize=8)
    ax.legend(fontsize=6)


if __name__ == "__main__":
    cli(main)
