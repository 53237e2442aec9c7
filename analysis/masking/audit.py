"""The gradient-masking audit's bookkeeping: worst case over an attack suite, accuracy against eps,
exact-zero gradients, and the named flags of Carlini et al. (2019), "On evaluating adversarial
robustness", section 5 (the checks that tell true robustness from gradient masking).

Pure functions of attack outcomes: the attacks themselves live in ``attacks``.
"""
from __future__ import annotations

import math

import numpy as np

from attacks.losses import loss_and_input_gradient, loss_function
from nn.backend import to_device, to_host
from nn.model import Sequential
from nn.spec import WEIGHT_LAYERS
from nn.validate import InputError, check_eps

# Every flag, with the pattern that raises it (accuracies in percentage points).
FLAG_RULES = {
    "gradient_masking": "apparent robustness that does not survive: the paper's FGSM accuracy is "
                        "at least {looks_robust} % and the worst case is more than {big} points "
                        "below it; or the worst case is more than {big} points below every "
                        "paper-mode gradient attack (FGSM, PGD and APGD with the paper's float32 "
                        "derivatives)",
    "zero_gradients": "more than {zero} % of the examples have an input gradient that is exactly 0 "
                      "in the paper's mode",
    "stable_mode_stronger": "stable derivatives lower the accuracy by more than {small} points",
    "gradient_free_stronger": "the gradient-free Square attack beats every gradient attack by more "
                              "than {small} points",
    "transfer_stronger": "examples transferred from the vanilla model beat every white-box "
                         "gradient attack by more than {small} points",
    "single_step_stronger": "single-step FGSM beats every iterative attack (PGD, APGD) by more "
                            "than {small} points",
    "noise_stronger": "uniform random noise beats every gradient attack",
    "eps_sweep_not_zero": "accuracy is still above {floor} % at eps = {eps_big}, "
                          "where MNIST images can be made uniformly grey",
}
ITERATIVE = ("pgd-", "apgd-")  # the name prefixes of the suite's iterative gradient attacks
THRESHOLDS = {"looks_robust": 50.0, "big": 10.0, "small": 5.0, "zero": 1.0, "floor": 1.0,
              "eps_big": 0.5}


def accuracy(fooled):
    """Robust accuracy (%) from a per-example fooled mask (clean errors count as fooled). A mean
    over examples: an empty mask is refused (InputError)."""
    f = to_host(fooled).astype(bool)
    if f.size == 0:
        raise InputError("fooled is empty (N = 0); robust accuracy is a mean over examples")
    return 100.0 * float((~f).mean())


def worst_case(fooled_by):
    """Per-example worst case over an attack suite: an example is robust only if no attack fooled
    it.

    fooled_by: {attack name: (N,) bool}  ->  {"accuracy": %, "fooled": (N,) bool, "strongest": the
    attack with the lowest accuracy on its own, "unique": {attack: examples only it fooled}}.
    """
    names = list(fooled_by)
    F = np.stack([to_host(fooled_by[n]).astype(bool) for n in names])  # (A, N)
    any_f = F.any(axis=0)
    accs = {n: accuracy(F[i]) for i, n in enumerate(names)}
    unique = {n: int((F[i] & (F.sum(axis=0) == 1)).sum()) for i, n in enumerate(names)}
    return {"accuracy": accuracy(any_f), "fooled": any_f, "strongest": min(accs, key=accs.get),
            "unique": unique}


def accuracy_curve(model, x, y, eps_values, make_attack):
    """Robust accuracy (%) at each eps (ascending):
    ``make_attack(eps)(model, x, y) -> AttackResult``.

    An example fooled at eps is fooled at every larger eps (the smaller ball lies inside the larger
    one), so the fooled masks are accumulated: the curve is non-increasing even where an attack run
    at a larger eps does worse than one at a smaller eps.
    """
    for k, e in enumerate(eps_values):  # x and y are checked by the attacks themselves
        check_eps(e, f"eps_values[{k}]")
    if list(eps_values) != sorted(eps_values):
        raise InputError(f"eps_values must be ascending, got {list(eps_values)}")
    curve, fooled = [], None
    for e in eps_values:
        f = to_host(make_attack(float(e))(model, x, y).success).astype(bool)
        fooled = f if fooled is None else fooled | f
        curve.append(accuracy(fooled))
    return curve


def zero_gradient(model, x, y, loss="ce", numerics="float32"):
    """(N,) host bool: the example's input gradient dL_n/dx_n is exactly 0 in every pixel (the
    float32 saturation signature: FGSM's sign(0) = 0 does not move such an image at all), computed
    in ``numerics`` ("paper": with TensorFlow's flush-to-zero, as the paper computed it; "float32";
    "stable": 0 only where the exact gradient is)."""
    _, g, _ = loss_and_input_gradient(model, x, y, loss_function(loss), numerics=numerics)
    g = to_host(g).reshape(len(g), math.prod(g.shape[1:]))  # not -1: N may be 0
    return np.abs(g).max(axis=1) == 0


def scale_logits(model, c):
    """The logit-scaling probe (after Brendel & Bethge 2017): the same network with its readout
    multiplied by c > 0, W^D <- c W^D and b^D <- c b^D, so z -> c z.

    Every prediction is unchanged (argmax is scale-invariant), and so is the direction of the margin
    loss's input gradient (it scales by c), yet the softmax saturates: once c times the logit margin
    exceeds 103.97 (87.34 in the paper's numerics, ``nn.numerics``) every p_j (j != y) of a float32
    softmax underflows to exactly 0, p_y rounds to 1, and the cross-entropy's input gradient is
    exactly 0 (745.13 in float64). An attack whose accuracy
    rises with c measures the arithmetic, not the classifier.
    """
    if not c > 0:
        raise InputError(f"the logit scale c must be positive, got {c}")
    if model.spec["layers"][-1]["type"] != "dense":
        raise InputError("the readout must be a dense layer, "
                         f"got {model.spec['layers'][-1]['type']!r}")
    params = [dict(p) for p in model.params]
    params[-1] = {k: v * model.dtype.type(c) for k, v in params[-1].items()}
    return Sequential(model.spec, params)


def permute_units(model, seed):
    """The same function with the units of every hidden dense layer and the channels of every
    convolution in a random order: for a permutation P of weight layer l's outputs, W^l <- P W^l and
    b^l <- P b^l, and the next weight layer takes its inputs in the same order, W^{l+1} <- W^{l+1}
    P^T (its input channels for a convolution; for a dense layer after a flatten, whose features are
    ordered (channel, row, column), each channel's block of H*W columns moves as one).

    Activations act per unit and max pooling per channel, so they commute with P. Exact arithmetic
    gives identical logits and gradients; float32 sums the products of every matrix product (the
    convolutions' too) in another order and rounds differently. Where an input gradient is mostly
    rounding noise (a confident example whose largest terms cancel or vanish), its signs change with
    the order: FGSM's accuracy over a few permutations says how much of a paper-mode number is such
    noise.
    """
    layers = model.spec["layers"]
    weights = [i for i, layer in enumerate(layers) if layer["type"] in WEIGHT_LAYERS]
    rng = np.random.default_rng(seed)
    params = [dict(p) for p in model.params]
    for i, j in zip(weights[:-1], weights[1:]):  # the outputs of layer i feed layer j
        n = params[i]["W"].shape[0]  # units (dense) or channels (conv2d)
        perm = to_device(rng.permutation(n), model.xp)
        params[i] = {"W": params[i]["W"][perm], "b": params[i]["b"][perm]}
        # (out, n) dense, (out, n, kh, kw) conv2d, (out, n * H * W) dense after a flatten
        W = params[j]["W"]
        if layers[i]["type"] == "conv2d" and layers[j]["type"] == "dense":
            # (out, n, H * W), channel blocks
            W = W.reshape(W.shape[0], n, -1)[:, perm].reshape(W.shape)
        else:
            W = W[:, perm]
        params[j] = {"W": W, "b": params[j]["b"]}
    return Sequential(model.spec, params)


def _min(accs, keys):
    vals = [accs[k] for k in keys if k in accs]
    return min(vals) if vals else None


def flags(accs, worst, zero_grad_paper, curve=None, eps_values=None, t=THRESHOLDS):
    """The named flags raised by one model's numbers.

    accs: {attack name: accuracy %} with names "<family>-<loss>-<mode>" for gradient attacks
    (family fgsm, or one of the iterative ``ITERATIVE``, pgd and apgd; mode: the numerics paper /
    float32 / stable, and stable-float64 for a float64 model's stable gradients; the loss of APGD-T
    is dlr-targeted) and "square", "transfer", "noise";
    worst: worst-case accuracy %; zero_grad_paper: fraction of exact-zero gradients in paper mode
    (``zero_gradient``);
    curve / eps_values: the accuracy-against-eps sweep. -> {flag: reason} (empty: nothing
    suspicious).
    """
    grad = [k for k in accs if k.startswith(("fgsm-", *ITERATIVE))]
    paper = [k for k in grad if k.endswith("-paper")]
    stable = [k for k in grad if "-stable" in k]  # the stable numerics, float32 or float64 model
    out = {}

    def below(a, b, margin):
        return a is not None and b is not None and a < b - margin

    fgsm_paper = accs.get("fgsm-ce-paper")
    if (fgsm_paper is not None and fgsm_paper >= t["looks_robust"]
            and below(worst, fgsm_paper, t["big"])):
        out["gradient_masking"] = f"worst case {worst:.1f} % vs the paper's FGSM {fgsm_paper:.1f} %"
    elif below(worst, _min(accs, paper), t["big"]):
        out["gradient_masking"] = (f"worst case {worst:.1f} % vs paper-mode gradient attacks "
                                   f"{_min(accs, paper):.1f} %")
    if 100 * zero_grad_paper > t["zero"]:
        out["zero_gradients"] = f"{100 * zero_grad_paper:.1f} % of examples"
    if below(_min(accs, stable), _min(accs, paper), t["small"]):
        out["stable_mode_stronger"] = f"{_min(accs, stable):.1f} % vs {_min(accs, paper):.1f} %"
    if below(accs.get("square"), _min(accs, grad), t["small"]):
        out["gradient_free_stronger"] = (f"Square {accs['square']:.1f} % vs gradient "
                                         f"{_min(accs, grad):.1f} %")
    if below(accs.get("transfer"), _min(accs, grad), t["small"]):
        out["transfer_stronger"] = (f"transfer {accs['transfer']:.1f} % vs white-box "
                                    f"{_min(accs, grad):.1f} %")
    fgsm, iterative = ([k for k in grad if k.startswith("fgsm-")],
                       [k for k in grad if k.startswith(ITERATIVE)])
    if below(_min(accs, fgsm), _min(accs, iterative), t["small"]):
        out["single_step_stronger"] = (f"FGSM {_min(accs, fgsm):.1f} % vs iterative "
                                       f"{_min(accs, iterative):.1f} %")
    if below(accs.get("noise"), _min(accs, grad), 0.0):
        out["noise_stronger"] = f"noise {accs['noise']:.1f} % vs gradient {_min(accs, grad):.1f} %"
    if curve is not None:
        big = [a for e, a in zip(eps_values, curve) if e >= t["eps_big"]]
        if big and big[0] > t["floor"]:
            out["eps_sweep_not_zero"] = f"{big[0]:.1f} % at eps = {t['eps_big']}"
    return out
