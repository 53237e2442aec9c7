"""Redraw the paper's figures in the paper's layouts from the raw data the experiments saved.

    python -m experiments.figures                      # from runs/weights, runs/rdm,
                                                         runs/fisher_path
    python -m experiments.figures --out docs/figures   # the PNGs of RESULTS.md's gallery

Reads only the run folders (no model is loaded, nothing is recomputed) and writes into --out:

* fig1-weights-<arch>.png: Figure 1, each weight layer's histogram, vanilla and saturated overlaid
  (density, log scale), excess kurtosis gamma_2 in the legend (``experiments.weights``);
* fig2-preactivations.png: Figure 2, the pre-activation histograms per layer of the vanilla sigmoid
  MLP, the saturated sigmoid MLP and the saturated ReLU MLP (``experiments.weights``);
* fig3-rdm-<arch>.png: Figures 3 and 7, the RDMs per layer (eq. 9), vanilla above saturated, each
  divided by its maximum and drawn on one colour scale, ticks at the class blocks
  (``experiments.rdm``);
* fig4-fisher-<arch>.png: Figure 4, for each class pair the length element dl/dt, the softmax
  trajectory and the Jacobian's singular values (log axis), vanilla above saturated
  (``experiments.fisher_path``);
* fig6-kurtosis.png: Figure 6, the linear read-out's robustness ratio against the weights' excess
  kurtosis, Pearson VII and the learned layers (``experiments.kurtosis_linear``);
* fig-audit-eps.png (beyond the paper): robust accuracy against eps under the audit's per-example
  worst PGD, one panel per architecture, vanilla / adversarial / saturated
  (``experiments.beyond.audit``);
* fig5-lbfgs-<sources>.png and fig8-adam-<sources>.png, with ``--grids``: Figures 5 and 8, the
  targeted grids (``experiments.lbfgs_grid``, ``experiments.adam_attack``), drawn in their run
  folders and copied here;
* fig-logit-scale.png (beyond the paper): FGSM accuracy against the logit scale c, cross-entropy in
  the paper's float32 numerics beside the scale-free margin loss, and the share of exactly-zero
  input gradients (``experiments.beyond.logit_scale``);
* fig-verify.png (beyond the paper): per model, the share proven robust by each verifier and the
  share the attack leaves, against eps (``experiments.beyond.verify``; the run folder --verify,
  then those of --verify-also).

A figure whose data are missing is skipped with a line saying which command makes them. Needs the
``plots`` extra; without matplotlib nothing is drawn and the command says so.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from experiments.lib.drawing import figure1, figure2, figure3, figure4, figure6
from experiments.lib.drawing_beyond import figure_audit, figure_logit_scale, figure_verify
from experiments.lib.cli import add_debug_arg, check_run_folder, cli, summary, parse
from experiments.lib.paper import ARCH_NAMES
from experiments.lib.targeted_grid import draw_grids

# the script of a targeted grid's run folder -> its figure's name in --out (+ "-<sources>.png")
GRID_FIGURES = {"experiments.lbfgs_grid": "fig5-lbfgs", "experiments.adam_attack": "fig8-adam"}


def _load(path):
    path = Path(path)
    if not path.exists():
        return None
    if path.suffix == ".json":
        return json.loads(path.read_text())
    with np.load(path) as z:
        return {k: z[k] for k in z.files}

def main(argv=None):
    """Redraw the figures from the run folders into --out (and section 7's grids into the --grids
    folders). -> the paths written (str; [] without matplotlib)."""
    parser = argparse.ArgumentParser(description=summary(__doc__))
    folders = {"weights": "weights", "rdm": "rdm", "fisher": "fisher_path",
               "kurtosis": "kurtosis_linear",
               "audit": "audit", "logit_scale": "logit_scale", "verify": "verify",
               "out": "figures"}
    for dest, script in folders.items():
        parser.add_argument("--" + dest.replace("_", "-"), default=f"runs/{script}",
                            help=(f"its run folder (default runs/{script}[-quick])"
                                  if dest != "out"
                                  else "where the PNGs go (default runs/figures[-quick])"))
    parser.add_argument("--verify-also", nargs="*", default=["runs/verify-relu",
                                                             "runs/verify-cnn-crown"],
                        metavar="FOLDER",
                        help="more run folders of experiments.beyond.verify, their models drawn "
                             "after --verify's (default runs/verify-relu runs/verify-cnn-crown, "
                             "the records' other two runs; none: the option alone)")
    parser.add_argument("--grids", nargs="*", default=[], metavar="FOLDER",
                        help="also redraw section 7's grids (Figures 5 and 8) into these folders "
                             "of python -m experiments.lbfgs_grid / experiments.adam_attack")
    parser.add_argument("--quick", action="store_true",
                        help="read and write the quick presets' folders")
    add_debug_arg(parser)
    args = parse(parser, argv,
                 quick={**{dest: f"runs/{script}-quick" for dest, script in folders.items()},
                        "verify_also": []})  # the quick verify run holds every model
    for folder in args.grids:
        check_run_folder(folder, "--grids", "python -m experiments.lbfgs_grid")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    missing = []
    hist, stats = _load(Path(args.weights) / "hist.npz"), _load(Path(args.weights) / "stats.json")
    if hist is None or stats is None:
        missing.append(f"Figures 1-2: no {args.weights}/hist.npz (python -m experiments.weights)")
    else:
        for arch in ARCH_NAMES:
            if (f"{arch}-vanilla" in stats or f"{arch}-saturated" in stats) and not figure1(
                    hist, stats, arch, out / f"fig1-weights-{arch}.png"):
                print("nothing drawn: matplotlib is not installed (pip install -e '.[plots]')")
                return []
        figure2(hist, out / "fig2-preactivations.png")
    mats, ratios = _load(Path(args.rdm) / "rdm.npz"), _load(Path(args.rdm) / "ratios.json")
    if mats is None or ratios is None:
        missing.append(f"Figures 3 and 7: no {args.rdm}/rdm.npz (python -m experiments.rdm)")
    else:
        for arch in ARCH_NAMES:
            if any(k.startswith(f"{arch}-") for k in mats):
                figure3(mats, ratios, arch, out / f"fig3-rdm-{arch}.png")
    paths = _load(Path(args.fisher) / "paths.npz")
    if paths is None:
        missing.append(f"Figure 4: no {args.fisher}/paths.npz (python -m experiments.fisher_path)")
    else:
        for arch in ARCH_NAMES:
            if any(k.startswith(f"{arch}-") for k in paths):
                figure4(paths, arch, out / f"fig4-fisher-{arch}.png")
    k = _load(Path(args.kurtosis) / "ratios.json")
    if k is None:
        missing.append(f"Figure 6: no {args.kurtosis}/ratios.json (python -m "
                       "experiments.kurtosis_linear)")
    else:
        figure6(k, out / "fig6-kurtosis.png")
    audit = _load(Path(args.audit) / "audit.json")
    if audit is None:
        missing.append(f"the audit's eps curves: no {args.audit}/audit.json (python -m "
                       "experiments.beyond.audit)")
    else:
        figure_audit(audit, out / "fig-audit-eps.png")
    ls = _load(Path(args.logit_scale) / "logit_scale.json")
    if ls is None:
        missing.append(f"the logit-scale probe: no {args.logit_scale}/logit_scale.json "
                       "(python -m experiments.beyond.logit_scale)")
    else:
        figure_logit_scale(ls, out / "fig-logit-scale.png")
    verify = _load(Path(args.verify) / "verify.json")
    if verify is None:
        missing.append(f"the proofs: no {args.verify}/verify.json (python -m "
                       "experiments.beyond.verify)")
    else:
        more = [_load(Path(folder) / "verify.json") for folder in args.verify_also]
        figure_verify(verify["rows"] + [row for m in more if m for row in m["rows"]],
                      out / "fig-verify.png")
    for line in missing:
        print(f"skipped {line}")
    for folder in args.grids:  # Figures 5 and 8: drawn in the grid's folder, copied into --out
        config = _load(Path(folder) / "config.json") or {}
        figure = GRID_FIGURES.get(config.get("script"), f"grid-{Path(folder).name}")
        for png in draw_grids(folder):
            shutil.copyfile(png, out / f"{figure}-{png.stem}.png")
    written = sorted(str(p) for p in out.glob("fig*.png"))
    print("\n".join(written))
    return written

if __name__ == "__main__":
    cli(main)
