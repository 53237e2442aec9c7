"""The readout in long training runs: which examples still give the cross-entropy a gradient, each
class's margins, and the logits that one misclassified training example pins (beyond the paper; eqs.
6-8 at their equilibrium).

A sigmoid network's readout penalty phi(z) = sigma'(z) (``nn.penalty``) pushes every logit away from
0 on its own side, with the force |phi'(z)| ~ e^-|z| that fades as |z| grows. A training example of
label j that the network classifies as k with p_k ~ 1 pushes the other way with a force of its own
that does not fade: its cross-entropy gradient dC/dz_k = p_k ~ 1. When that example shares the
hidden code of class k's images (a 9 drawn like a 0), what moves one moves all, and the readout
settles where the two forces balance (``pinned_logit``): class k's logit z_k at z* on its own images
and the example's label j at -z*, a margin of about 2 z* that more training does not change.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq

from attacks.losses import margin
from nn.backend import to_device, to_host
from nn.penalty import phi_sigmoid
from nn.validate import check_number

from .saturation import margin_predicts_zero

# |phi'(z)| = sigma'(z) |1 - 2 sigma(z)| is largest at z = ln(2 + sqrt 3), where it is
# 1 / (6 sqrt 3).
STEEPEST = math.log(2 + math.sqrt(3))


def silence(model, x, y, batch=1000):
    """-> dict: ``silent``, the share of examples whose float32 (flush-to-zero) dC/dz is exactly 0;
    over the correctly classified ones, ``margin``, the median logit margin z_y - max_{j != y} z_j,
    ``z_correct``, the median correct-class logit z_y, and ``negative``, the share with z_y < 0
    (where a relu readout penalty sum_k relu(z_k) is at its minimum, 0, and pushes nothing); the
    same per class y = 0..K-1 in ``silent_by_class``, ``margin_by_class`` and ``z_correct_by_class``
    (lists of K; None for a class without examples): a readout unit that stops growing shows as one
    class's margins. x (N, 1, 28, 28), y (N,) host arrays."""
    silent, margins, z_correct, labels = [], [], [], []
    for i in range(0, len(x), batch):
        xb, yb = (to_device(x[i:i + batch], model.xp, model.dtype),
                  to_device(y[i:i + batch], model.xp))
        silent.append(to_host(margin_predicts_zero(model, xb, yb, numerics="paper")))
        logits = model.logits(xb)
        M, _ = margin(logits, yb)
        right = logits.argmax(axis=1) == yb
        margins.append(to_host(-M[right]))
        z_correct.append(to_host(logits[model.xp.arange(len(yb)), yb][right]))
        labels.append(y[i:i + batch][to_host(right)])
    silent, margins, z_correct, labels = map(np.concatenate, (silent, margins, z_correct, labels))
    classes = range(logits.shape[1])  # K, the readout's width

    def by_class(values, of):  # median of values over the examples of each class, None where none
        return [float(np.median(values[of == c])) if (of == c).any() else None for c in classes]

    return {"silent": float(silent.mean()), "margin": float(np.median(margins)),
            "z_correct": float(np.median(z_correct)), "negative": float((z_correct < 0).mean()),
            "silent_by_class": [float(silent[y == c].mean()) if (y == c).any() else None
                                for c in classes],
            "margin_by_class": by_class(margins, labels),
            "z_correct_by_class": by_class(z_correct, labels)}


def misclassified(model, x, y, batch=1000):
    """The examples of x (N, 1, 28, 28) with labels y (N,), host arrays, that the model classifies
    wrong.

    -> dict of host arrays, one entry per such example, in the order of x: ``index`` (into x),
    ``label`` y_n, ``predicted`` k = argmax_j z_j, ``gap`` z_k - z_y > 0 (how far the logits are
    from fitting it) and ``z_predicted`` z_k."""
    found = {"index": [], "label": [], "predicted": [], "gap": [], "z_predicted": []}
    for i in range(0, len(x), batch):
        z = to_host(model.logits(
            to_device(x[i:i + batch], model.xp, model.dtype))).astype(np.float64)  # (n, K)
        yb, k = y[i:i + batch], z.argmax(axis=1)
        wrong = np.flatnonzero(k != yb)
        rows = np.arange(len(yb))[wrong]
        found["index"].append(i + wrong)
        found["label"].append(yb[wrong])
        found["predicted"].append(k[wrong])
        found["gap"].append(z[rows, k[wrong]] - z[rows, yb[wrong]])
        found["z_predicted"].append(z[rows, k[wrong]])
    return {name: np.concatenate(parts) for name, parts in found.items()}


def pinned_logit(weight, n_class, n_pinning=1):
    """The logit z* > 0 at which a sigma' readout penalty on n_class images of a class balances
    n_pinning training examples of other labels that the network classifies as that class:

        (n_class + n_pinning) * weight * |phi'(z*)| = n_pinning,
        phi(z) = sigma'(z),  |phi'(z)| ~ e^-z,

    i.e. z* ~ ln(weight * (n_class + n_pinning) / n_pinning): every image of the shared code carries
    the penalty, the pinning ones too. weight: one readout unit's weight in the loss relative to
    one example's cross-entropy (``nn.penalty.unit_weight``: lam / K for the sigmoid MLP's readout,
    penalty averaged over units and batch). Each pinning example pushes the class's logit down with
    p_k ~ 1 and its own label's logit up with 1 - p_j ~ 1; the class's images push the first up and
    the second down with the penalty's force, so on those images z_k settles at z*, the pinning
    label's z_j at -z*, and their margin near 2 z*. Assumes the class's images and the pinning
    examples share one hidden code (the readout cannot tell them apart) and the images' own
    cross-entropy is negligible (margins past ~10). The balance holds for the mean of e^-z_k over
    the images; where their logits spread, their median sits a little above z*.

    -> z* (float); nan where the penalty cannot balance them even where it is steepest (z = ln(2 +
    sqrt 3), |phi'| = 1 / (6 sqrt 3) ~ 0.096): the pinning examples then win; inf where z* would lie
    past 100. Raises InputError for a weight <= 0 or counts < 1."""
    check_number("weight", weight, positive=True)
    check_number("n_class", n_class, minimum=1, integer=True)
    check_number("n_pinning", n_pinning, minimum=1, integer=True)
    # the |phi'| at which the two forces are equal
    target = n_pinning / ((n_class + n_pinning) * weight)

    def excess(z):  # |phi'(z)| - target, falling for z > STEEPEST
        return float(-phi_sigmoid(np.float64(z))[1]) - target
    if excess(STEEPEST) <= 0:
        return float("nan")
    if excess(100.0) >= 0:  # past any float32 logit the penalty still outweighs them
        return float("inf")
    return brentq(excess, STEEPEST, 100.0, xtol=1e-12)


def readout_sides(model, x, y, batch=1000):
    """Where the readout's logits sit against 0, on images x (N, 1, 28, 28) with labels y (N,), host
    arrays.

    Over the correctly classified images, as the evaluation's margins
    (``experiments.lib.evaluation``): -> dict of floats: ``z_correct`` and ``z_wrong_max``, the
    medians of z_y and of max_{j != y} z_j; ``margin``, the median of their difference;
    ``common_mode``, the median of their mean (z_y + max_{j != y} z_j) / 2, about 0 when the classes
    separate around 0; ``wrong_positive``, the share of their n (K - 1) wrong-class logits above 0
    (where the readout's sigma' penalty pushes them up); ``true_positive``, the share of their
    true-class logits above 0.
    """
    zt, zw, pos = [], [], 0
    for i in range(0, len(x), batch):
        z = to_host(model.logits(
            to_device(x[i:i + batch], model.xp, model.dtype))).astype(np.float64)  # (n, K)
        right = z.argmax(axis=1) == y[i:i + batch]
        z, yb = z[right], y[i:i + batch][right]
        M, _ = margin(z, yb)  # (n,): max_{j != y} z_j - z_y
        true = np.arange(z.shape[1]) == yb[:, None]  # (n, K)
        zt.append(z[true])
        zw.append(z[true] + M)
        pos += int(((z > 0) & ~true).sum())
    zt, zw = np.concatenate(zt), np.concatenate(zw)
    K = true.shape[1] if len(zt) else 0
    if len(zt) == 0:  # no image classified correctly: nothing to measure
        return dict.fromkeys(["z_correct", "z_wrong_max", "margin", "common_mode", "wrong_positive",
                              "true_positive"],
                             float("nan"))
    return {"z_correct": float(np.median(zt)), "z_wrong_max": float(np.median(zw)),
            "margin": float(np.median(zt - zw)),
            "common_mode": float(np.median((zt + zw) / 2)),
            "wrong_positive": pos / (len(zt) * (K - 1)), "true_positive": float((zt > 0).mean())}



def shift_readout(model, s):
    """Subtract ``s`` from every readout bias in place: z_k -> z_k - s for each class
    k. -> model."""
    readout = model.params[-1]
    readout["b"] -= readout["b"].dtype.type(s)
    return model


def pinning_report(model, weight, x, y, trained, dropped, x_test, y_test):
    """One snapshot's pinning report (``pinned_logit`` against what the run measures), as a dict of
    JSON-able values.

    x (N, 1, 28, 28), y (N,): the training split, host arrays; trained (n,): the indices the model
    trains on (``experiments.lib.intervention.trained_indices``), over which every training number
    is taken; dropped: indices it trains without, listed when misclassified, never counted; x_test,
    y_test: test images and labels; weight: ``readout_weight`` (None: no pinned logit). Per class k
    (lists of K): ``n_class`` its trained images, ``n_pinning`` the trained images of other labels
    classified as k, ``pinned_logit`` z* where n_pinning > 0, ``z_correct_by_class`` its median
    own-class logit over its correctly classified trained images, ``margin_by_class_test`` its
    median test margin; ``misclassified``: ``analysis.masking.readout.misclassified``'s entries,
    indices into the split."""
    # (m,) the trained and the left out
    seen = np.union1d(trained, np.asarray(dropped, dtype=np.int64))
    wrong = misclassified(model, x[seen], y[seen])
    wrong["index"] = seen[wrong["index"]]
    train, test = silence(model, x[trained], y[trained]), silence(model, x_test, y_test)
    K = len(train["z_correct_by_class"])
    n_class = np.bincount(y[trained], minlength=K)
    n_pinning = np.bincount(wrong["predicted"][np.isin(wrong["index"], trained)], minlength=K)
    pinned = [pinned_logit(weight, int(n_class[k]), int(n_pinning[k])) if weight and n_pinning[k]
              else None for k in range(K)]
    return {"misclassified": {k: v.tolist() for k, v in wrong.items()},
            "dropped": [int(i) for i in dropped],
            "n_class": n_class.tolist(), "n_pinning": n_pinning.tolist(), "pinned_logit": pinned,
            "z_correct_by_class": train["z_correct_by_class"],
            "margin_by_class_test": test["margin_by_class"], "margin_test": test["margin"]}
