"""Exact MILP verification of ReLU MLPs: its verdict matches exhaustive enumeration of
the activation patterns on a tiny network; counterexamples are real; verified examples resist
PGD."""
import itertools

import numpy as np
import pytest
from scipy.optimize import linprog

from analysis.proofs.crown import linear_bounds
from analysis.proofs.milp import verify_example
from attacks.ball import box
from attacks.pgd import PGD
from nn import architectures
from nn.model import Sequential
from nn.validate import InputError


def _tiny(seed):
    """784 inputs would make enumeration hopeless: 3 inputs, two hidden layers of 3 ReLUs
    (64 patterns)."""
    spec = architectures.mlp("relu", hidden=3, input_shape=[1, 1, 3])
    model = Sequential.init(spec, seed=seed)
    return Sequential(model.spec, [{k: v * 2.0 for k, v in p.items()} for p in model.params])


def exact_min_margin(model, x, y, eps):
    """min over the box of min_j (z_y - z_j), by enumerating every activation pattern: on each
    pattern's region (a polytope) the network is affine, so each (pattern, j) is one LP."""
    (W1, b1), (W2, b2), (W3, b3) = [(p["W"].astype(np.float64), p["b"].astype(np.float64))
                                    for p in model.params if "W" in p]
    lo, hi = (a[0] for a in box(x.reshape(1, -1), eps))
    best = np.inf
    for s1 in itertools.product([0, 1], repeat=3):
        for s2 in itertools.product([0, 1], repeat=3):
            D1, D2 = np.diag(s1), np.diag(s2)
            # h1 = W1 x + b1; a1 = D1 h1; h2 = W2 a1 + b2 = W2 D1 W1 x + (W2 D1 b1 + b2)
            A2, c2 = W2 @ D1 @ W1, W2 @ D1 @ b1 + b2
            # pattern: (2 s - 1) h >= 0  ->  -(2s-1) (A x + c) <= 0
            g1, g2 = 2 * np.array(s1) - 1, 2 * np.array(s2) - 1
            A_ub = np.vstack([-g1[:, None] * W1, -g2[:, None] * A2])
            b_ub = np.concatenate([g1 * b1, g2 * c2])
            bnds = list(zip(lo, hi))
            if linprog(np.zeros(3), A_ub=A_ub, b_ub=b_ub, bounds=bnds, method="highs").status != 0:
                continue  # no input in the box has this pattern
            Z, cz = W3 @ D2 @ A2, W3 @ D2 @ c2 + b3  # logits = Z x + cz
            for j in range(10):
                if j == y:
                    continue
                obj, const = Z[y] - Z[j], cz[y] - cz[j]
                r = linprog(obj, A_ub=A_ub, b_ub=b_ub, bounds=bnds, method="highs")
                if r.status == 0:
                    best = min(best, r.fun + const)
    return best


def test_milp_matches_enumeration():
    verdicts = {"verified": 0, "falsified": 0}
    rng = np.random.default_rng(0)
    for seed in range(6):
        model = _tiny(seed)
        x = rng.uniform(0, 1, (4, 1, 1, 3)).astype(np.float32)
        y = model.predict(x)
        for i in range(4):
            for eps in (0.05, 0.3):
                exact = exact_min_margin(model, x[i], int(y[i]), eps)
                if abs(exact) < 1e-4:
                    continue  # on the decision boundary: float rounding may go either way
                v = verify_example(model, x[i:i + 1], y[i:i + 1], eps, time_limit=30)
                assert v.status == ("verified" if exact > 0 else "falsified"), (seed,
                                                                                i, eps, exact, v)
                verdicts[v.status] += 1
                if v.status == "falsified":
                    xc = v.counterexample
                    assert np.abs(xc.astype(np.float64) - x[i:i + 1]).max() <= eps
                    assert xc.min() >= 0 and xc.max() <= 1
                    assert model.predict(xc)[0] != y[i]
                    assert model.astype(np.float64).predict(xc.astype(np.float64))[0] != y[i]
    assert verdicts["verified"] >= 5 and verdicts["falsified"] >= 5, verdicts


def test_verified_examples_resist_pgd_and_the_milp_beats_crown():
    """On a small trained-looking network: whatever the MILP proves, PGD cannot fool, and it decides
    examples CROWN leaves open."""
    spec = architectures.mlp("relu", hidden=12, input_shape=[1, 3, 3])
    model = Sequential.init(spec, seed=1)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (12, 1, 3, 3)).astype(np.float32)
    y = model.predict(x)
    eps = 0.1
    crown = linear_bounds(model, x, y, eps).verified
    fooled = PGD(eps, steps=50, restarts=3, loss="margin", numerics="stable")(model, x, y).success
    statuses = [verify_example(model, x[i:i + 1], y[i:i + 1], eps, time_limit=30).status
                for i in range(12)]
    for i, s in enumerate(statuses):
        assert s != "unknown"
        if s == "verified":
            assert not fooled[i]
        if crown[i]:
            assert s == "verified"
    assert sum(s == "verified" for s in statuses) > int(crown.sum())


def test_rejects_sigmoid():
    model = Sequential.init(architectures.mlp("sigmoid", hidden=3, input_shape=[1, 1, 3]), seed=0)
    x = np.zeros((1, 1, 1, 3), np.float32)
    with pytest.raises(InputError, match="ReLU MLPs only"):
        verify_example(model, x, model.predict(x), 0.1)
