"""Adversarial training (eq. 4): alpha C(x) + (1 - alpha) C(x_fgsm)."""
from __future__ import annotations

from nn.validate import InputError, check_number

from .fgsm import FGSM
from .losses import loss_and_input_gradient


def adversarial_loss_and_grads(model, x, x_adv, y, alpha=0.5, numerics="float32"):
    """L = (1/N) sum_n [alpha C(x_n) + (1 - alpha) C(x_adv_n)] and dL/dparams, x_adv held fixed.

    One forward and backward pass on the stacked batch (x; x_adv), with per-example weights
    alpha/N and (1 - alpha)/N.  -> (L, grads, logits of the clean half (N, 10)).
    """
    xp = model.xp
    N = x.shape[0]
    if N == 0:
        raise InputError("x is an empty batch (N = 0); eq. 4's loss is a mean over examples")
    w = xp.concatenate([xp.full((N,), alpha / N, dtype=x.dtype),
                        xp.full((N,), (1 - alpha) / N, dtype=x.dtype)])
    # the training batches were checked once
    loss, grads, logits = model.loss_and_grads(xp.concatenate([x, x_adv]), xp.concatenate([y, y]),
                                               weights=w, numerics=numerics, check=False)
    return loss, grads, logits[:N]


def adversarial_objective(alpha=0.5, eps=0.25):
    """Training objective: FGSM examples from the current model at every step, then eq. 4. The
    settings are checked here, once; the training batches are not re-checked at every step."""
    attack = FGSM(eps=eps)
    check_number("alpha", alpha, maximum=1)

    def objective(model, x, y, step, numerics="float32"):
        # FGSM's gradient (eq. 3), numpy's float32
        _, g, _ = loss_and_input_gradient(model, x, y, check=False)
        return adversarial_loss_and_grads(model, x, attack.step(x, g), y, alpha, numerics)
    return objective
