"""No number moves: fingerprints of every Table 1 recipe at the quick sizes, recorded before the
code was reorganised, must be reproduced by the code of today.

For each of the nine quick recipes: its parameters after three Adam steps of its own objective and
numerics (penalty, adversarial training, flush-to-zero), the input gradients of the cross-entropy in
every numerics mode (on the trained weights and on a 30x copy whose units saturate, where the modes
differ most), and the Jacobian of the logits. Each array is fingerprinted by three float64 sums
(plain, absolute, and against a fixed random vector), compared to 1e-5 of the array's absolute sum
for the MLPs (1e-3 on their 30x copies, 1e-2 on the CNNs, whose ReLU kinks and max-pool ties flip
with BLAS's summation order): a change in the code's
arithmetic moves them far more, a different BLAS on another machine much less. On the machine the
record was made on (same numpy, same CPU, same number of BLAS threads) the arrays' SHA-256 must
match too, bit for bit.

To record anew after a change that is meant to move numbers: ``python tests/test_golden.py``.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

RECORD = Path(__file__).with_name("golden.json")


def _platform_key():
    """The machine a bit-for-bit comparison is meaningful on: CPU model, numpy (and its BLAS)
    version."""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    threads = (os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
               or os.cpu_count())
    # threads: summation order
    return f"{platform.machine()} {cpu} numpy {np.__version__} blas threads {threads}"


def _fingerprint(a):
    a = np.ascontiguousarray(np.asarray(a))
    v = np.random.default_rng(12345).standard_normal(a.size)
    f = a.astype(np.float64).ravel()
    return {"sha256": hashlib.sha256(a.tobytes()).hexdigest()[:16],
            "sums": [float(f.sum()), float(np.abs(f).sum()), float(f @ v)]}


def compute(mnist_dir):
    """{recipe name: {array name: fingerprint}} for the nine quick recipes."""
    from attacks.losses import LOSSES, loss_and_input_gradient
    from nn.mnist import load_mnist
    from nn.optim import adam_init, adam_update
    from nn.train import TrainConfig
    from experiments.lib.recipes import quick_recipes

    data = load_mnist(mnist_dir)
    x_train, y_train = data["train"][0][:64], data["train"][1][:64]
    x, y = data["test"][0][:8], data["test"][1][:8]
    out = {}
    for name, recipe in quick_recipes().items():
        cfg = TrainConfig(**recipe.train)
        model = recipe.init_model(seed=0)
        objective = recipe.objective()
        state = adam_init(model.params)
        for step in range(3):
            xb, yb = x_train[step * 16:(step + 1) * 16], y_train[step * 16:(step + 1) * 16]
            _, grads, _ = objective(model, xb, yb, step, numerics=cfg.numerics)
            adam_update(model.params, grads, state, cfg.lr, cfg.beta1, cfg.beta2, cfg.eps,
                        numerics=cfg.numerics)
        fp = {f"param{i}.{k}": _fingerprint(v) for i, p in enumerate(model.params)
              for k, v in sorted(p.items())}
        scaled = model.astype(np.float32)
        for p in scaled.params:
            for k in p:
                p[k] = p[k] * np.float32(30)
        for tag, m in (("", model), ("x30.", scaled)):
            for mode in ("paper", "float32", "stable"):
                _, dx, _ = loss_and_input_gradient(m, x, y, LOSSES["ce"], numerics=mode)
                fp[f"{tag}grad.{mode}"] = _fingerprint(dx)
        fp["jacobian"] = _fingerprint(model.jacobian(x[:2]))
        out[name] = fp
    return out


def test_numbers_do_not_move(mnist_dir):
    record = json.loads(RECORD.read_text())
    now = compute(mnist_dir)
    assert set(now) == set(record["recipes"])
    same_machine = record["platform"] == _platform_key()
    for name, arrays in record["recipes"].items():
        assert set(now[name]) == set(arrays), name
        for key, ref in arrays.items():
            got = now[name][key]
            # relative to sum |a| (the sums cancel). Another BLAS (thread count, CPU) sums in
            # another order: in the CNNs, max-pool's near-ties and ReLU kinks then flip (measured
            # with one thread instead of two: up to 4e-3), in the 30x copies ReLU kinks (up to 1e-3)
            tol = (1e-2 if name.startswith("cnn") else 1e-3 if key.startswith("x30.")
                   else 1e-5) * ref["sums"][1]
            np.testing.assert_allclose(got["sums"], ref["sums"], rtol=0, atol=tol,
                                       err_msg=f"{name} {key}")
            if same_machine:
                assert got["sha256"] == ref["sha256"], f"{name} {key}: not bit for bit"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    d = os.environ.get("SATNETS_MNIST_DIR") or str(Path(__file__).resolve().parents[2] / "shared"
                                                   / "data" / "mnist")
    RECORD.write_text(json.dumps({"platform": _platform_key(), "recipes": compute(d)},
                                 indent=1) + "\n")
    print(f"wrote {RECORD}")
