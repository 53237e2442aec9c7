"""The fast gradient sign method (eq. 3)."""
from __future__ import annotations

import dataclasses


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
        xp = model.xp
        x_adv = x + self.eps * xp.sign(model.input_gradient(x, y))
        if self.clip:
            x_adv = xp.clip(x_adv, 0.0, 1.0)
        return AttackResult(x_adv, model.predict(x_adv) != y)
