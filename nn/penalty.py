"""The saturating penalty (eqs. 6-8) and its lambda schedule.

    R(x) = lambda * sum_l sum_i phi_c(h_i^l)

over every weight layer's pre-activations h^l, the readout included, with one phi_c per layer:

* ``relu``:    phi(z) = max(0, z),                    phi'(z) = 1[z > 0]
* ``sigmoid``: phi(z) = |sigma'(z)| = sigma(1 - sigma), phi'(z) = sigma(1 - sigma)(1 - 2 sigma)
* ``linear``:  phi(z) = z,                            phi'(z) = 1   (the paper's last CNN layer)

Batch convention (the paper does not say): ``batch="mean"`` (default) averages R over the examples
of a batch, like the cross-entropy it is added to, so lambda does not change meaning with the batch
size; ``batch="sum"`` sums it (lambda then weighs 128 x more at batch 128).

Unit convention (the paper does not say either): ``units="sum"`` (default) sums phi over the units
of a layer, as eq. 6 is written; ``units="mean"`` averages over each layer's units instead (what
``tf.reduce_mean`` of each layer's penalty gives), so a layer's weight in R is lambda / n_l and the
10-unit readout's units weigh 100 x more each than those of a 1000-unit hidden layer.

Derivative (``derivative=``) of the sigmoid penalty: ``"closed_form"`` (default) computes phi and
phi' from e = exp(-|h|), phi = e / (1 + e)^2, nonzero in float32 until |h| > 103.97
(``nn.numerics.EXP_UNDERFLOW``); ``"autodiff"`` is what TensorFlow's autodiff computes from a
rounded sigma, s = sigma(h): phi = s (1 - s), phi' = s (1 - s)(1 - 2 s), both exactly 0 once s
rounds to 1 (from h = 16.64 on in float32, ``nn.numerics.SIGMOID_ONE``), so units past that point
feel no push at all.

Flush-to-zero: the penalty takes no numerics, and phi and phi' keep their subnormal values (87.34 <
|h| < 103.97) in the paper's numerics too; ``nn.model.backward`` adds dR/dh to the backward signal
and flushes the sum. Flushing phi first (``nn.numerics.exp_flushed``) would change training's bits
at the readout: a logit of 90 beside a top logit of 170 has a normal cross-entropy gradient p_j / N
of 1.4e-37 (N = 128), which its subnormal dR/dz (-1.1e-42 at lambda 1.74, units="mean") moves by 99
ulps. (A hidden sigmoid unit there passes no gradient in the paper's numerics, its y (1 - y) is
exactly 0.) So phi alone still asks exp for subnormal results, as it always did.
"""
from __future__ import annotations

from .backend import array_module
from .layers import sigmoid
from .validate import InputError, check_number

PHI_KINDS = ("relu", "sigmoid", "linear")


def phi_relu(h):
    """phi = max(0, h), dphi/dh = 1[h > 0] (0 at the kink, like ReLU's backward)."""
    mask = h > 0
    return h * mask, mask.astype(h.dtype)


def phi_sigmoid(h):
    """phi = sigma(h)(1 - sigma(h)) = e / (1 + e)^2 with e = exp(-|h|) (even in h, never 0/0 or
    overflow; nonzero in float32 until |h| > 103.97, unlike the product of a rounded sigma);
    dphi/dh = phi (1 - 2 sigma(h)) = -phi * sign(h) (1 - e) / (1 + e)."""
    xp = array_module(h)
    e = xp.exp(-xp.abs(h))
    phi = e / (1 + e) ** 2
    return phi, -phi * xp.sign(h) * (1 - e) / (1 + e)


def phi_linear(h):
    """phi = h, dphi/dh = 1."""
    return h, h * 0 + 1


def phi_sigmoid_autodiff(h):
    """phi = s (1 - s), dphi/dh = s (1 - s)(1 - 2 s) with s = sigma(h) rounded to h's dtype: the
    penalty as TensorFlow's autodiff differentiates it. Equal to ``phi_sigmoid`` up to rounding
    wherever s < 1, exactly 0 where s rounds to 1 (float32: from h = 16.64 on,
    ``nn.numerics.SIGMOID_ONE``)."""
    s = sigmoid(h)
    phi = s * (1 - s)
    return phi, phi * (1 - 2 * s)


PHI = {"relu": phi_relu, "sigmoid": phi_sigmoid, "linear": phi_linear}
PHI_AUTODIFF = {**PHI, "sigmoid": phi_sigmoid_autodiff}
UNIT_REDUCTIONS = ("sum", "mean")
BATCH_REDUCTIONS = ("mean", "sum")
DERIVATIVES = ("closed_form", "autodiff")


def _check_choice(name, value, choices):
    if value not in choices:
        raise InputError(f"unknown {name} {value!r}; expected one of {choices}")


def saturating_penalty(hs, kinds, lam, units="sum", batch="mean", derivative="closed_form"):
    """R = lam * b sum_n sum_l w_l sum_i phi_l(h^l_{n,i})  (eqs. 6-8) and dR/dh^l for each layer,
    with w_l = 1 (``units="sum"``) or 1 / n_l, n_l the units of layer l (``units="mean"``), and
    b = 1/N (``batch="mean"``) or 1 (``batch="sum"``).

    hs: list of pre-activations, each (N, ...); kinds: one name of PHI_KINDS (or None: no penalty
    on that layer) per entry of hs; derivative: "closed_form" or "autodiff" (see the module
    docstring). ->  (R as a 0-d array, list of dR/dh^l or None).
    """
    if len(kinds) != len(hs):
        raise ValueError(f"{len(kinds)} penalty kinds for {len(hs)} weight layers")
    _check_choice("unit reduction", units, UNIT_REDUCTIONS)
    _check_choice("batch reduction", batch, BATCH_REDUCTIONS)
    _check_choice("penalty derivative", derivative, DERIVATIVES)
    phis = PHI_AUTODIFF if derivative == "autodiff" else PHI
    N = hs[0].shape[0]
    total, dhs = 0.0, []
    for h, kind in zip(hs, kinds):
        if kind is None or lam == 0:
            dhs.append(None)
            continue
        if kind not in PHI:
            raise ValueError(f"unknown penalty kind {kind!r}; expected one of {PHI_KINDS} or None")
        phi, dphi = phis[kind](h)
        # h.size = N * n_l
        scale = lam * (1 / N if batch == "mean" else 1) * (1 if units == "sum" else N / h.size)
        total = total + phi.sum() * scale
        dhs.append(dphi * scale)
    return total, dhs


def unit_weight(lam, n_units, batch_size, units="sum", batch="mean"):
    """The weight of one unit's phi(h) in the training loss, relative to one example's cross-entropy
    (eqs. 6-8 with ``saturating_penalty``'s reductions; the cross-entropy is a batch mean):

        w = lam * (1 if units == "sum" else 1 / n_units) * (1 if batch == "mean" else batch_size).

    So d(loss)/dh = (w phi'(h) + dC/dh) / batch_size for each example: e.g. lam / 10 for the sigmoid
    MLP's 10-unit readout at units="mean", batch="mean". Raises InputError for an unknown reduction
    or n_units, batch_size < 1."""
    _check_choice("unit reduction", units, UNIT_REDUCTIONS)
    _check_choice("batch reduction", batch, BATCH_REDUCTIONS)
    check_number("n_units", n_units, minimum=1, integer=True)
    check_number("batch_size", batch_size, minimum=1, integer=True)
    return lam * (1 if units == "sum" else 1 / n_units) * (1 if batch == "mean" else batch_size)


def lambda_schedule(step, lam_max, lam_step):
    """lambda at a training step: 0 at step 0, rising by lam_step every step up to lam_max."""
    return min(lam_max, step * lam_step)


def saturating_objective(kinds, lam_max, lam_step, units="sum", batch="mean",
                         derivative="closed_form"):
    """The training objective of the saturated networks: mean cross-entropy + R (eqs. 6-8) with
    lambda = lambda_schedule(step). -> objective(model, x, y, step, numerics="float32") for
    ``nn.train.train``."""
    _check_choice("unit reduction", units, UNIT_REDUCTIONS)
    _check_choice("batch reduction", batch, BATCH_REDUCTIONS)
    _check_choice("penalty derivative", derivative, DERIVATIVES)
    for kind in kinds:
        if kind is not None:
            _check_choice("penalty kind", kind, PHI_KINDS)
    check_number("lam_max", lam_max)
    check_number("lam_step", lam_step)

    def objective(model, x, y, step, numerics="float32"):
        lam = lambda_schedule(step, lam_max, lam_step)
        return model.loss_and_grads(x, y, numerics=numerics, check=False,
                                    penalty=lambda hs: saturating_penalty(hs, kinds, lam, units,
                                                                          batch, derivative))
    return objective


# float32 resolution: sigma'(h) ~ exp(-|h|) falls below float32's machine epsilon 2^-23 once
# |h| > 23 ln 2 ~ 15.94 (15.9, as every saturated fraction reported was counted); from h = 16.64 on
# sigma(h) itself is exactly 1 (``nn.numerics.SIGMOID_ONE``).
SIGMOID_SATURATION = 15.9


def saturated_fraction(h, kind):
    """Fraction of the entries of h that are saturated units.

    sigmoid: sigma'(h) below float32 machine epsilon, |h| > 15.9; relu: h <= 0 (the unit is off and
    passes no gradient); linear: never.
    """
    xp = array_module(h)
    if kind == "sigmoid":
        return float((xp.abs(h) > SIGMOID_SATURATION).mean())
    if kind == "relu":
        return float((h <= 0).mean())
    return 0.0
