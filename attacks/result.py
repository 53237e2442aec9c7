"""What every attack returns (foolbox / torchattacks style): the adversarial inputs, a per-example
success mask that is the model's own verdict on them, and the perturbation norms.

Every attack is built with its hyperparameters and called with the data,
``Attack(eps=..., ...)(model, x, y) -> AttackResult``; the targeted attacks of section 7 return the
subclass ``TargetedResult``, with the per-pair records of their search.

``success[n]`` is computed from the returned ``x_adv[n]`` itself, ``model.predict(x_adv) != y``
(targeted: ``== target``), whatever the attack's search saw along the way: an attack cannot report
an example as fooled by a point the model classifies correctly (``verdict``).

Clean errors, one rule for every attack: an attack that searches the ball for a point the model
misclassifies (PGD, APGD and APGD-T, Square, uniform noise) returns an example the model already
misclassifies as it is, x_adv[n] = x[n], fooled: there is nothing to search for
(``AttackResult.of_search``). FGSM is no search but the paper's one step (eq. 3), taken from every
example: a clean error that its step corrects is not a success, as in the paper's FGSM accuracy
(``AttackResult.of``). The targeted attacks stop a pair whose source the model already classifies as
the target at iteration 0, with the source itself.

Non-finite logits: an image at which the model's logits overflow (inf) or are NaN has no gradient to
follow and no class; where the verdict meets one, the attack raises an ``InputError`` that names
the non-finite logits (``verdict``), so that NaN is never returned as an adversarial image.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from nn.backend import array_module
from nn.validate import InputError


def verdict(model, x, name="x_adv"):
    """The model's class of each image, argmax_k z_k(x), after checking that the logits z(x) and the
    images are finite. x: (N, *input_shape) -> (N,) ints, on x's device.

    Raises InputError naming the non-finite logits (module docstring) where they are inf or NaN, or
    where an image itself is not finite (its logits are then NaN, or hide it)."""
    z = model.logits(x)
    xp = array_module(z)
    pixels = x.reshape(len(x), math.prod(x.shape[1:]))  # (N, D); not -1: N may be 0
    bad = ~(xp.isfinite(z).all(axis=1) & xp.isfinite(pixels).all(axis=1))
    if bool(bad.any()):
        i = int(xp.flatnonzero(bad)[0])
        row, nan_pixels = z[i], int(xp.isnan(pixels[i]).sum())
        raise InputError(f"the model's logits are not finite (beyond {z.dtype}'s range, or NaN) at "
                         f"{int(bad.sum())} of the {len(x)} images {name}: {name}[{i}] has "
                         f"{int(xp.isinf(row).sum())} inf and {int(xp.isnan(row).sum())} NaN "
                         f"logits of {row.size}"
                         + (f" and {nan_pixels} NaN pixels (a step along a NaN gradient)"
                            if nan_pixels else "")
                         + "; an attack has no gradient and no verdict there (scale the weights "
                           "down, or cast the model to float64)")
    return z.argmax(axis=1)


def perturbation_norms(x_adv, x):
    """||x_adv_n - x_n|| in the L-inf and L2 norms, the difference taken in float64 (as
    ``attacks.ball`` measures it: a float32 difference would round up to float32(eps) > eps).
    (N, ...) -> ((N,), (N,)) float64, on x's device."""
    d = x_adv.astype(np.float64) - x.astype(np.float64)
    d = d.reshape(len(x), math.prod(x.shape[1:]))  # not -1: N may be 0
    return array_module(d).abs(d).max(axis=1), array_module(d).sqrt((d * d).sum(axis=1))


@dataclasses.dataclass(frozen=True)
class AttackResult:
    """An untargeted attack on N examples; arrays on the device of its inputs.

    x_adv: (N, *input_shape), the adversarial inputs, in the inputs' dtype, inside the ball the
      attack was given (``attacks.ball.project``).
    success: (N,) bool, the model misclassifies x_adv[n] (``model.predict(x_adv) != y``).
    linf, l2: (N,) float64, ||x_adv[n] - x[n]|| in the two norms.
    """
    x_adv: object
    success: object
    linf: object
    l2: object

    @classmethod
    def of(cls, model, x, x_adv, y):
        """The result for the adversarial inputs x_adv of x: the model's verdict and the norms.
        InputError where the logits at x_adv are not finite (``verdict``)."""
        return cls(x_adv, verdict(model, x_adv) != y, *perturbation_norms(x_adv, x))

    @classmethod
    def of_search(cls, model, x, x_adv, y):
        """The result of an attack that searches the ball (module docstring, clean errors):
        x_adv[n] = x[n] wherever the model misclassifies x[n], then ``of``. InputError where the
        logits at x or at x_adv are not finite (``verdict``)."""
        clean_error = verdict(model, x, "x") != y  # (N,)
        xp = array_module(clean_error)
        return cls.of(model, x,
                      xp.where(clean_error.reshape((-1,) + (1,) * (x.ndim - 1)), x, x_adv), y)

    @property
    def robust_accuracy(self):
        """The share of examples the attack did not fool (clean errors that stay errors count as
        fooled), in [0, 1], computed as a count over N (40 of 1,000 is 0.04, not 1 - 0.96). An empty
        batch has none: InputError."""
        n = len(self.success)
        if n == 0:
            raise InputError("the attack ran on an empty batch (N = 0); "
                             "robust accuracy is a mean over examples")
        return int((~self.success).sum()) / n


@dataclasses.dataclass(frozen=True)
class TargetedResult(AttackResult):
    """A targeted attack on P (source, target) pairs (section 7); every field a host numpy array.

    x_adv: (P, *input_shape), the first iterate classified as the target, else the last one.
    success: (P,) bool, the model classifies x_adv[p] as target[p].
    linf, l2: (P,) float64, ||x_adv[p] - x_source[p]||.
    iterations: (P,) int, the iteration of success (0: the source itself), or the iterations run.
    evaluations: (P,) int, forward/backward passes used.
    curve: (P, K) the loss C(x, y_T) at the iterations ``curve_iters`` (K,); NaN after a pair
    stopped.
    stop: list of P strings, why each pair stopped ("target reached", "budget", or scipy's message).
    """
    iterations: np.ndarray = None
    evaluations: np.ndarray = None
    curve: np.ndarray = None
    curve_iters: np.ndarray = None
    stop: list = None

    @property
    def robust_accuracy(self):
        """None: a targeted attack's failures are not robustness (the model may still err
        elsewhere)."""
        return None

    def arrays(self):
        """The records as a dict of arrays, for ``numpy.savez``."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["stop"] = np.array(self.stop)
        return d

    def summary(self):
        """Success count, and median iterations / distances over the successful pairs."""
        s = self.success
        med = (lambda a: float(np.median(a[s]))) if s.any() else (lambda a: None)
        return {"pairs": int(s.size), "success": int(s.sum()),
                "median_iterations": med(self.iterations),
                "median_l2": med(self.l2), "median_linf": med(self.linf)}
