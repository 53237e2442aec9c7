"""Our proofs beside auto_LiRPA's on the same weights: the share of test images that interval bound
propagation, CROWN and alpha-CROWN prove robust, ours (``analysis.proofs``) and auto_LiRPA's (Xu et
al. 2020, the reference implementation of CROWN and alpha-CROWN), per ReLU MLP and eps.

Ours covers the float32 network's rounding (the ``analysis.proofs.ibp`` module docstring) and takes
every box as CROWN's intersected with IBP's; auto_LiRPA bounds the exact network in float32
arithmetic. Both alpha-CROWNs take 20 Adam steps from CROWN's slopes (ours of size
--alpha-lr, auto_LiRPA's its default 0.5, decayed by 0.98 a step) and keep the best bound seen.
A share of ours at least auto_LiRPA's is the target.

    python -m experiments.tools.auto_lirpa --from results/models     # the shipped ReLU MLP

Needs PyTorch (the ``bench`` extra) and auto_LiRPA (``INSTALL``). auto_LiRPA 0.3, the release on
the package index, was written for PyTorch 1.x; ``import_auto_lirpa`` lets it run beside PyTorch 2
with three shims outside this project's code (each named there), and turns off its sparse-alpha
bookkeeping, whose indexing PyTorch 2 refuses. Writes auto_lirpa.json and auto_lirpa.md.
"""
from __future__ import annotations

import argparse
import sys
import time
import types

import numpy as np

from analysis.proofs import alpha_crown, crown, ibp
from experiments.lib import presets, torch_twin
from experiments.lib.cli import (UsageError, add_checkpoint_args, add_common_args, amount,
                                 checkpoint_stamp, cli, count, load_models, parse, positive,
                                 summary)
from experiments.lib.runs import Run, write_json
from nn.mnist import load_mnist

INSTALL = 'pip install -e ".[bench]" && pip install --no-deps "auto_LiRPA==0.3" && pip install tqdm'
METHODS = ("ibp", "crown", "alpha_crown")
THEIRS = {"ibp": "IBP", "crown": "CROWN", "alpha_crown": "alpha-CROWN"}  # auto_LiRPA's names
# off: sparse alphas index with shapes PyTorch 2 refuses
SPARSE_OFF = {"sparse_intermediate_bounds": False, "sparse_conv_intermediate_bounds": False,
              "sparse_intermediate_bounds_with_ibp": False, "sparse_features_alpha": False,
              "sparse_spec_alpha": False}


def import_auto_lirpa():
    """auto_LiRPA 0.3's module, imported beside PyTorch 2 through three shims: the opset setter
    its graph parser imports from ``torch.onnx.symbolic_helper`` (since moved to a global),
    ``torch._six`` (removed in PyTorch 2.0) and subscripting a TorchScript node by attribute name
    (now ``node.<kind>(name)``). Raises UsageError when either library is missing."""
    if not torch_twin.torch_available():
        raise UsageError(f"this comparison needs PyTorch and auto_LiRPA: {INSTALL}")
    import torch
    import torch.onnx.symbolic_helper as helper

    def set_opset_version(version):
        try:
            from torch.onnx._globals import GLOBALS
        except ImportError:
            from torch.onnx._internal.torchscript_exporter._globals import GLOBALS
        GLOBALS.export_onnx_opset_version = version

    if not hasattr(helper, "_set_opset_version"):
        helper._set_opset_version = set_opset_version
    if "torch._six" not in sys.modules:
        six = types.ModuleType("torch._six")
        six.string_classes, six.inf = (str, bytes), float("inf")
        sys.modules["torch._six"] = torch._six = six
    if not hasattr(torch._C.Node, "__getitem__"):
        torch._C.Node.__getitem__ = lambda node, name: getattr(node, node.kindOf(name))(name)
    try:
        import auto_LiRPA
    except ImportError:
        raise UsageError(f"this comparison needs auto_LiRPA: {INSTALL}") from None
    return auto_LiRPA


def bounded(lirpa, module, x, steps):
    """auto_LiRPA's BoundedModule of the PyTorch twin ``module`` (its graph traced once on x[:1]),
    alpha-CROWN taking ``steps`` steps, the sparse-alpha options off."""
    import torch
    return lirpa.BoundedModule(module, torch.from_numpy(x[:1]), bound_opts={
        **SPARSE_OFF, "optimize_bound_args": {"iteration": steps}})


def theirs(lirpa, bounded_module, x, y, eps):
    """auto_LiRPA's verified share per method on host x (N, 1, 28, 28) float32, y (N,), radius eps
    (the ball intersected with [0, 1]), ``bounded_module`` from ``bounded``. -> ({method: float in
    [0, 1]}, {method: seconds})."""
    import torch
    n, k = len(y), 10
    C = torch.zeros(n, k - 1, k)  # the margins z_y - z_j, j != y
    others = np.array([[j for j in range(k) if j != label] for label in y])
    rows = torch.arange(n)[:, None]
    C[rows, torch.arange(k - 1)[None], torch.from_numpy(y)[:, None]] = 1.0
    C[rows, torch.arange(k - 1)[None], torch.from_numpy(others)] = -1.0
    xt = torch.from_numpy(x)
    ball = lirpa.PerturbationLpNorm(norm=np.inf, eps=eps, x_L=(xt - eps).clamp(0, 1),
                                    x_U=(xt + eps).clamp(0, 1))
    shares, seconds = {}, {}
    for method in METHODS:
        t = time.perf_counter()
        lower, _ = bounded_module.compute_bounds(x=(lirpa.BoundedTensor(xt, ball),), C=C,
                                          method=THEIRS[method], bound_upper=False)
        seconds[method] = time.perf_counter() - t
        shares[method] = float((lower.min(dim=1).values > 0).float().mean())
    return shares, seconds


def ours(model, x, y, eps, steps, lr):
    """Our verified share per method (``analysis.proofs``). -> ({method: share}, {method: s})."""
    fns = {"ibp": ibp.verified_fraction, "crown": crown.verified_fraction,
           "alpha_crown": lambda *a: alpha_crown.verified_fraction(*a, steps=steps, lr=lr)}
    shares, seconds = {}, {}
    for method, fn in fns.items():
        t = time.perf_counter()
        shares[method] = fn(model, x, y, eps)
        seconds[method] = time.perf_counter() - t
    return shares, seconds


def format_table(rows):
    """Markdown: per model and eps, each method's verified share, ours / auto_LiRPA's, in %."""
    lines = ["| model | n | eps | " + " | ".join(f"{THEIRS[m]}: ours / auto_LiRPA"
                                                for m in METHODS) + " |",
             "| --- | --- | --- |" + " --- |" * len(METHODS)]
    for r in rows:
        lines.append(f"| {r['model']} | {r['n']} | {r['eps']:g} | " + " | ".join(
            f"{100 * r['ours'][m]:.1f} / {100 * r['theirs'][m]:.1f}" for m in METHODS) + " |")
    return "\n".join(lines) + "\n\n(% of the first n test images proven robust)\n"


def main(argv=None):
    """Prove with ours and auto_LiRPA's on each model and eps; write auto_lirpa.json and
    auto_lirpa.md. -> the rows, one per model and eps."""
    parser = add_checkpoint_args(add_common_args(argparse.ArgumentParser(
        description=summary(__doc__))), ["relu_mlp-saturated"])
    parser.add_argument("--eps", nargs="+", type=amount, default=[0.005, 0.01])
    parser.add_argument("--n-test", type=count, default=200,
                        help="the first N test images (default 200)")
    parser.add_argument("--alpha-steps", type=count, default=20,
                        help="alpha-CROWN's Adam steps, both sides (default 20)")
    parser.add_argument("--alpha-lr", type=positive, default=0.1,
                        help="our alpha-CROWN's step size (default 0.1)")
    args = parse(parser, argv, quick=presets.OPTIONS["auto_lirpa"])
    models = load_models(args, np)
    not_relu = [n for n, m in models.items()
                if set(crown.mlp_activations(m) or ["conv"]) != {"relu"}]
    if not_relu:
        raise UsageError(f"auto_LiRPA is compared here on ReLU MLPs; {', '.join(not_relu)} is not "
                         "one (choose --models relu_mlp-...)")
    lirpa = import_auto_lirpa()
    run = Run("auto_lirpa", args)
    x, y = (a[:args.n_test] for a in load_mnist(args.data_dir)["test"])
    rows = []
    for name, model in models.items():
        reference = bounded(lirpa, torch_twin.freeze(torch_twin.twin(model)), x, args.alpha_steps)
        for eps in args.eps:
            mine, my_seconds = ours(model, x, y, eps, args.alpha_steps, args.alpha_lr)
            other, their_seconds = theirs(lirpa, reference, x, y, eps)
            rows.append({"model": name, "n": len(y), "eps": eps, "ours": mine, "theirs": other,
                         "seconds_ours": my_seconds, "seconds_theirs": their_seconds,
                         "checkpoint": checkpoint_stamp(args.checkpoints, name)})
            run.log(f"{name} eps {eps:g}: " + ", ".join(
                f"{THEIRS[m]} {100 * mine[m]:.1f} / {100 * other[m]:.1f} %" for m in METHODS))
            write_json(run.path("auto_lirpa.json"), {"options": vars(args), "rows": rows})
    table = format_table(rows)
    run.path("auto_lirpa.md").write_text(table)
    run.log("\n" + table)
    return rows


if __name__ == "__main__":
    cli(main)
