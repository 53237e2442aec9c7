"""The fast gradient sign method (eq. 3)."""
from __future__ import annotations

import dataclasses

from nn.backend import array_module
from nn.numerics import check_numerics
from nn.validate import check_batch, check_eps

from .ball import project
from .losses import loss_and_input_gradient, loss_function
from .result import AttackResult


@dataclasses.dataclass(frozen=True)
class FGSM:
    """x_adv = clip(x + eps * sign(dC/dx), 0, 1) with the true label y  (eq. 3), projected onto the
    closed ball |x_adv - x| <= eps in the image's dtype (``attacks.ball.project``: the float32 sum
    can overshoot eps by one ulp; the projection moves such pixels back by that ulp).

    ``clip`` keeps the adversarial image in the pixel range [0, 1] (the paper does not say whether
    it clipped; ``clip=False`` turns it off). sign(0) = 0: a pixel whose gradient is exactly zero,
    as it is in float32 for a saturated network, does not move at all.
    ``loss`` ("ce", the paper's, or "margin") and ``numerics`` ("paper", "float32" or "stable": the
    arithmetic of the gradient, ``attacks.losses``) are for the gradient-masking audit; the defaults
    are the paper's attack in numpy's float32, and ``numerics="paper"`` is the paper's exact
    numerics (TensorFlow's flush-to-zero).

    >>> result = FGSM(eps=0.25)(model, x, y)
    """
    eps: float = 0.25
    clip: bool = True
    loss: str = "ce"
    numerics: str = "float32"

    def __post_init__(self):
        check_eps(self.eps)
        loss_function(self.loss)
        check_numerics(self.numerics)

    def __call__(self, model, x, y):
        """x: (N, *input_shape) images (in [0, 1] when ``clip``), y: (N,) true labels, on the
        model's device -> AttackResult (success: the model misclassifies x_adv; FGSM steps from
        every example, and a clean error that the step corrects is not a success, as in the paper's
        FGSM accuracy: ``attacks.result``)."""
        check_batch(model, x, y, unit_range=self.clip)
        _, g, _ = loss_and_input_gradient(model, x, y, loss_function(self.loss),
                                          numerics=self.numerics, check=False)
        return AttackResult.of(model, x, project(self.step(x, g), x, self.eps, self.clip), y)

    def step(self, x, g):
        """x + eps sign(g), clipped to [0, 1] if ``clip``: the step in the model's arithmetic, which
        adversarial training (eq. 4) takes as it is, like TensorFlow did; the attack projects it."""
        xp = array_module(x)
        x_adv = x + self.eps * xp.sign(g)
        return xp.clip(x_adv, 0.0, 1.0) if self.clip else x_adv
