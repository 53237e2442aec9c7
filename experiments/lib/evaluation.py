"""One evaluation of a trained model, shared by Table 1 and the sweep.

The measurements, each under one name in code, JSON, tables and logs (numerics modes as in
``nn.numerics.NUMERICS``: paper, float32, stable):

    clean_acc              test accuracy
    fgsm_<mode>            FGSM accuracy (eq. 3, eps = 0.25, clipped to [0, 1]), input gradient
                           in <mode>
    zero_grad_<mode>       share of test images whose cross-entropy input gradient is exactly 0
                           (paper, float32)
    margin_q               quantiles (1, 10, 50, 90, 99 %) of the logit margin
                           z_y - max_{j != y} z_j over the correctly classified images
    depth_q                per weight layer, the same quantiles of |h| (the depth of saturation)
    saturated_frac         per weight layer, the share of saturated units
                           (``nn.penalty.saturated_fraction``)

and, with ``regime=True`` (the sweep's measurements of where the robustness comes from):

    fgsm_margin_stable     FGSM on the margin loss, stable derivatives
    fgsm_paper_permuted    FGSM (paper) on three copies with hidden units and channels permuted
                           (``analysis.masking.audit.permute_units``): the same function summed in
                           other orders
    zero_pred_margin_paper exactly-zero gradients predicted from the margin alone
                           (``analysis.masking.saturation``)
    zero_pred_path_paper   ... from depths and margins (max-plus path bound; MLPs only)
    zero_pred_agree_paper  share of images where the path bound's prediction is right (MLPs only)

The float32 entries are None on a device that flushes subnormals (the GPU:
``nn.numerics.flushes_subnormals``), where "float32" would compute the paper's numbers.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from analysis.masking.audit import permute_units
from analysis.masking.saturation import log_path_bound, margin_predicts_zero
from attacks import FGSM
from attacks.losses import LOSSES, loss_and_input_gradient, margin
from experiments.lib import paper
from experiments.lib.runs import read_json, write_json
from nn.backend import to_device, to_host
from nn.checkpoint import CheckpointError, load_checkpoint
from nn.numerics import flushes_subnormals
from nn.penalty import saturated_fraction

QUANTILES = (0.01, 0.1, 0.5, 0.9, 0.99)
MODES = ("paper", "float32", "stable")
# reported with a spread over seeds
ACCURACIES = ("clean_acc", "fgsm_paper", "fgsm_float32", "fgsm_stable")


def _quantiles(a):
    return [float(v) for v in np.quantile(a, QUANTILES)]


def _zero_rows(g):
    """(N,) bool: examples whose gradient g (N, ...) is exactly 0."""
    return (abs(g).reshape(len(g), -1).max(axis=1) == 0)


def evaluate(model, x, y, *, eps=paper.FGSM_EPS, clip=paper.FGSM_CLIP, batch=500,
             kinds=None, regime=False):
    """The measurements of the module docstring on test images x (N, 1, 28, 28) and labels y (N,),
    host arrays, moved to the model's device ``batch`` at a time. kinds: the penalty's phi per
    weight layer, for ``saturated_frac`` (None: not measured). -> dict of floats and lists."""
    xp, n = model.xp, len(x)
    modes = [m for m in MODES if not (m == "float32" and flushes_subnormals(xp))]
    attacks = {f"fgsm_{mode}": FGSM(eps, clip, numerics=mode) for mode in modes}
    if regime:
        attacks["fgsm_margin_stable"] = FGSM(eps, clip, loss="margin", numerics="stable")
        permuted = [permute_units(model, seed) for seed in (1, 2, 3)]
    mlp = all(layer["type"] in ("flatten", "dense", "sigmoid", "relu")
              for layer in model.spec["layers"])
    counts = dict.fromkeys(["clean_acc", *attacks, "zero_grad_paper", "zero_grad_float32",
                            "zero_pred_margin_paper", "zero_pred_path_paper",
                            "zero_pred_agree_paper"], 0)
    perm = [0, 0, 0]
    margins, depths, sat = [], None, 0
    for i in range(0, n, batch):
        xb, yb = to_device(x[i:i + batch], xp, model.dtype), to_device(y[i:i + batch], xp)
        logits, _, hs = model.forward(xb)
        right = logits.argmax(axis=1) == yb
        counts["clean_acc"] += int(right.sum())
        margins.append(to_host(-margin(logits, yb)[0][right]))
        for name, attack in attacks.items():
            counts[name] += int((~attack(model, xb, yb).success).sum())
        for mode in [m for m in modes if m != "stable"]:
            _, g, _ = loss_and_input_gradient(model, xb, yb, LOSSES["ce"], numerics=mode)
            zero = _zero_rows(g)
            counts[f"zero_grad_{mode}"] += int(zero.sum())
        if regime:  # ``zero`` is the paper's here
            for k, pm in enumerate(permuted):
                perm[k] += int((~attacks["fgsm_paper"](pm, xb, yb).success).sum())
            counts["zero_pred_margin_paper"] += int(
                margin_predicts_zero(model, xb, yb, numerics="paper").sum())
            if mlp:
                pred = ~np.isfinite(log_path_bound(model, xb, yb, numerics="paper"))
                counts["zero_pred_path_paper"] += int(pred.sum())
                counts["zero_pred_agree_paper"] += int((pred == to_host(zero)).sum())
        sample = [to_host(xp.abs(h)).ravel()[::7] for h in hs]  # a fixed subsample of |h| per layer
        depths = sample if depths is None else [np.concatenate([a, b])
                                                for a, b in zip(depths, sample)]
        if kinds:
            sat = sat + np.array([saturated_fraction(h, k) for h, k in zip(hs, kinds)]) * len(xb)
    out = {k: v / n for k, v in counts.items()}
    if "float32" not in modes:
        out.update(fgsm_float32=None, zero_grad_float32=None)
    if not regime:
        for k in ("fgsm_margin_stable", "zero_pred_margin_paper", "zero_pred_path_paper",
                  "zero_pred_agree_paper"):
            out.pop(k, None)
    elif not mlp:
        out.pop("zero_pred_path_paper")
        out.pop("zero_pred_agree_paper")
    out["margin_q"] = _quantiles(np.concatenate(margins))
    out["depth_q"] = [_quantiles(a) for a in depths]
    out["saturated_frac"] = (sat / n).round(4).tolist() if kinds else None
    if regime:
        out["fgsm_paper_permuted"] = [c / n for c in perm]
    return out


def percent(v, digits=1):
    """A share as a percentage with ``digits`` decimals, "-" for None (not measured)."""
    return "-" if v is None else f"{100 * v:.{digits}f}"


def aggregate(per_seed):
    """One model's results over seeds: the mean of every number (elementwise for lists) and, for the
    ``ACCURACIES``, the sample standard deviation <name>_std (ddof 1; 0 for one seed).
    per_seed: list of ``evaluate`` results -> dict."""
    out = {}
    for k, v in per_seed[0].items():
        if any(r[k] is None for r in per_seed):
            out[k] = None
            continue
        values = np.array([r[k] for r in per_seed], dtype=float)
        out[k] = values.mean(axis=0).tolist() if values.ndim > 1 else float(values.mean())
    for k in ACCURACIES:
        if out[k] is not None:
            out[f"{k}_std"] = (float(np.std([r[k] for r in per_seed], ddof=1))
                               if len(per_seed) > 1 else 0.0)
    return out


EVAL_VERSION = 4  # bump when ``evaluate`` changes: older records are recomputed from the snapshots


def evaluate_snapshot(snap, x, y, xp, log, batch):
    """Evaluate snapshot ``snap`` (snap-e<epoch>.npz) on x, y into eval-e<epoch>.json beside it,
    unless that exists from the current EVAL_VERSION and as many images. -> the record (None if the
    snapshot cannot be read)."""
    snap = Path(snap)
    epoch = int(snap.stem[len("snap-e"):])
    out = snap.with_name(f"eval-e{epoch}.json")
    rec = read_json(out, {})
    if rec.get("version") == EVAL_VERSION and rec.get("n_test") == len(x):
        return rec
    try:
        model, meta = load_checkpoint(snap, xp)
    except CheckpointError as e:
        log(f"{snap.parent.name}: skipping {snap.name} ({e})")
        return None
    t0 = time.perf_counter()
    rec = {"version": EVAL_VERSION, "epoch": epoch, "train_seconds": meta.get("train_seconds"),
           "n_test": len(x), **evaluate(model, x, y, batch=batch, regime=True)}
    write_json(out, rec)
    log(f"{snap.parent.name} epoch {epoch}: clean {100 * rec['clean_acc']:.2f}  FGSM paper "
        f"{100 * rec['fgsm_paper']:.1f}  float32 {percent(rec['fgsm_float32'])}  stable "
        f"{100 * rec['fgsm_stable']:.1f}  margin stable {100 * rec['fgsm_margin_stable']:.1f}  "
        f"zero_grad_paper {100 * rec['zero_grad_paper']:.1f} %  median margin "
        f"{rec['margin_q'][2]:.1f}  median |h| {[round(q[2], 1) for q in rec['depth_q']]}  "
        f"({time.perf_counter() - t0:.0f} s)")
    return rec
