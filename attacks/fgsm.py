"""The fast gradient sign method (eq. 3)."""
from __future__ import annotations

import dataclasses

from nn.backend import array_module


@dataclasses.dataclass(frozen=True)
class AttackResult:
    """x_adv: the adversarial inputs (N, ...); success: (N,) bool, the model misclassifies x_adv."""
    x_adv: object
    success: object


@dataclasses.dataclass(frozen=True)
class FGSM:
    """x_adv = clip(x + eps * sign(dC/dx), 0, 1) with the true label y  (eq. 3).

    ``clip`` keeps the adversarial image in the pixel range [0, 1] (the paper does not say whether
    it clipped; ``clip=False`` turns it off). sign(0) = 0: a pixel whose gradient is exactly zero,
    as it is in float32 for a saturated network, does not move at all.

    >>> result = FGSM(eps=0.25)(model, x, y)
    """
    eps: float = 0.25
    clip: bool = True

    def __call__(self, model, x, y):
        x_adv = self.step(x, model.input_gradient(x, y))
        return AttackResult(x_adv, model.predict(x_adv) != y)

    def step(self, x, g):
        """x + eps sign(g), clipped to [0, 1] if ``clip``: the attack given the gradient g."""
        xp = array_module(x)
        x_adv = x + self.eps * xp.sign(g)
        return xp.clip(x_adv, 0.0, 1.0) if self.clip else x_adv
