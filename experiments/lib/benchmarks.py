"""What ``experiments.tools.bench`` times, and how: the matmul peak and the matrix-product FLOPs of
a training step, the workloads of the side-by-side comparison with PyTorch on the same weights
(``experiments.lib.torch_twin``), alternating median timings, a cProfile summary per step, and
saturated training in each numerics (flush-to-zero against float32, ``nn.numerics``). Random data of
MNIST's shape stand in for the images except in the saturated timings from a checkpoint."""
from __future__ import annotations

import contextlib
import math
import pstats
import time
from pathlib import Path

import numpy as np

from analysis.masking.saturation import saturated_sigmoid_mlp
from nn.architectures import cnn, mlp
from nn.backend import synchronize, to_device
from nn.model import Sequential
from nn.numerics import exp_then_flush
from nn.spec import multiply_adds
from nn.train import TrainConfig, train


def matmul_gflops(xp, n=4096, repeats=5):
    """Best-of-``repeats`` GFLOP/s of an (n, n) @ (n, n) float32 product: 2 n^3 FLOPs."""
    a = to_device(np.random.default_rng(0).random((n, n), dtype=np.float32), xp)
    a @ a
    best = math.inf
    for _ in range(repeats):
        synchronize(xp)
        t = time.perf_counter()
        a @ a
        synchronize(xp)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def train_step_flops(spec, batch):
    """Matrix-product FLOPs of one training step: per weight layer with m multiply-adds per example
    (``nn.spec.multiply_adds``): forward 2 N m, dL/dW 2 N m, and dL/dx 2 N m except for the first
    weight layer, whose input gradient training skips."""
    m = multiply_adds(spec)
    return 2 * batch * (2 * m[0] + 3 * sum(m[1:]))


def epoch_gflops(spec, xp, steps, batch=128):
    """Achieved matmul GFLOP/s of ``steps`` training steps of a fresh model of ``spec`` on ``xp``
    (steps * batch random examples, after one warm-up step; FLOPs by
    ``train_step_flops``). -> (GFLOP/s, seconds)."""
    n = steps * batch
    rng = np.random.default_rng(0)
    data = {"train": (rng.random((n, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, n))}
    model = Sequential.init(spec, seed=0, xp=xp)
    train(model, {"train": (data["train"][0][:batch], data["train"][1][:batch])},
          TrainConfig(epochs=1, batch_size=batch), log=lambda s: None)  # warm-up
    synchronize(xp)
    t = time.perf_counter()
    train(model, data, TrainConfig(epochs=1, batch_size=batch), log=lambda s: None)
    synchronize(xp)
    dt = time.perf_counter() - t
    return train_step_flops(spec, batch) * steps / dt / 1e9, dt


SETTLE = 0.5  # seconds before each timed call (median_times)


def median_times(fns, repeats=5, warmup=1, settle=SETTLE):
    """Median wall seconds of each zero-argument function in ``fns`` ({name: fn}), run alternately
    (a, b, a, b, ...) ``repeats`` times after ``warmup`` untimed rounds, so that both sides see the
    same machine state (clock boost, other load) -> {name: seconds}.

    Each timed call starts ``settle`` seconds after the previous one ended: a library's worker
    threads spin-wait for a while after its last call (OpenBLAS's, PyTorch's OpenMP pool) and, on
    two cores, take the cores from the other library's threads. Timed back to back, the sigmoid
    MLP's training step of PyTorch ran 18.6-19.0 ms against 11.4-11.6 ms after a 0.5 s pause
    (numpy's 11.5-15.2 against 12.8; docs/performance.md, a plain loop beside the benchmark)."""
    times = {k: [] for k in fns}
    for r in range(warmup + repeats):
        for k, fn in fns.items():
            time.sleep(settle)
            t = time.perf_counter()
            fn()
            if r >= warmup:
                times[k].append(time.perf_counter() - t)
    return {k: float(np.median(v)) for k, v in times.items()}


def per_call_times(fns, reps, repeats=5, warmup=1, settle=SETTLE):
    """{name: median seconds per repetition} of each ``fn(reps)`` of ``fns``: median_times of
    fn(reps) / that reps."""
    times = median_times({k: lambda f=f: f(reps) for k, f in fns.items()}, repeats, warmup,
                         settle)
    return {k: t / reps for k, t in times.items()}


def comparison_workloads(xp, device, quick=False):
    """The workloads of the PyTorch comparison: [(name, satnets fn, torch fn, reps)], each fn(reps)
    running one workload reps times (``per_call_times``) on the same weights and the same random
    MNIST-shaped data."""
    import torch

    from experiments.lib import torch_twin
    from nn.optim import adam_init, adam_update
    tdev = "cuda" if device == "gpu" else "cpu"
    sync = (lambda: torch.cuda.synchronize()) if tdev == "cuda" else (lambda: None)
    rng = np.random.default_rng(0)
    hidden = 64 if quick else 1000
    archs = [("sigmoid MLP", mlp("sigmoid", hidden=hidden)),
             ("ReLU MLP", mlp("relu", hidden=hidden)),
             ("CNN", cnn(channels=(4, 8), hidden=32) if quick else cnn())]
    out = []
    for name, spec in archs:
        model = Sequential.init(spec, seed=0, xp=xp)
        mlp_arch = name != "CNN"
        sizes = {"train": 128, "grad": 500, "jac": 100}
        data = {}
        for k, n in sizes.items():
            x = rng.random((n, 1, 28, 28), dtype=np.float32)
            y = rng.integers(0, 10, n)
            data[k] = (to_device(x, xp), to_device(y, xp), torch.from_numpy(x).to(tdev),
                       torch.from_numpy(y).to(tdev))
        reps = 2 if quick else (10 if mlp_arch else 3)

        ours_train = model.astype(model.dtype)
        state = adam_init(ours_train.params)

        def ours_step(reps, m=ours_train, st=state, d=data["train"]):
            for _ in range(reps):
                _, grads, _ = m.loss_and_grads(d[0], d[1], check=False)
                adam_update(m.params, grads, st)
            synchronize(xp)

        tw = torch_twin.twin(model, tdev)
        step = torch_twin.train_step(tw, torch.optim.Adam(tw.parameters(), lr=1e-3))

        def torch_step(reps, d=data["train"], step=step):
            for _ in range(reps):
                step(d[2], d[3])
            sync()

        frozen = torch_twin.freeze(torch_twin.twin(model, tdev))
        tgrad, tjac = torch_twin.input_gradient(frozen), torch_twin.jacobian(frozen)

        def ours_grad(reps, d=data["grad"], m=model):
            for _ in range(reps):
                m.loss_and_input_gradient(d[0], d[1])
            synchronize(xp)

        def torch_grad(reps, d=data["grad"], g=tgrad):
            for _ in range(reps):
                g(d[2], d[3])
            sync()

        def ours_jac(reps, d=data["jac"], m=model):
            for _ in range(reps):
                m.jacobian(d[0])
            synchronize(xp)

        def torch_jac(reps, d=data["jac"], j=tjac):
            for _ in range(reps):
                j(d[2])
            sync()

        out += [(f"{name}: training step (batch 128)", ours_step, torch_step, reps),
                (f"{name}: input gradient (batch 500)", ours_grad, torch_grad, reps),
                (f"{name}: input Jacobian (100 images)", ours_jac, torch_jac, reps)]
    return out


def compare_with_torch(xp, device, quick=False, repeats=5):
    """Print (and return) the side-by-side table: per workload the median milliseconds of satnets
    and PyTorch per call and their ratio. -> [(name, ours s, torch s)]."""
    import torch
    repeats = 2 if quick else repeats
    print(f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads) beside satnets on the "
          f"same weights; alternating, median of {repeats}")
    print(f"{'workload':42s} {'satnets ms':>11s} {'PyTorch ms':>11s} {'ratio':>6s}")
    rows = []
    for name, ours, theirs, reps in comparison_workloads(xp, device, quick):
        t = per_call_times({"ours": ours, "torch": theirs}, reps, repeats=repeats)
        rows.append((name, t["ours"], t["torch"]))
        print(f"{name:42s} {1e3 * rows[-1][1]:11.2f} {1e3 * rows[-1][2]:11.2f} "
              f"{rows[-1][1] / rows[-1][2]:6.2f}x")
    return rows


def print_profile(profiler, steps, top=12):
    """The ``top`` functions by own time, in ms per training step (cProfile adds a little
    overhead)."""
    stats = pstats.Stats(profiler).stats  # {(file, line, name): (calls, _, own s, cumulative s, _)}
    rows = sorted(((v[2], v[0], k) for k, v in stats.items()), reverse=True)[:top]
    for own, calls, (path, line, fn) in rows:
        print(f"    {1e3 * own / steps:7.2f} ms/step  {calls // steps:4d} calls/step  "
              f"{Path(path).name}:{line} {fn}")


def flush_to_zero_timing(model, data, repeats=3, batch=128):
    """Median seconds of an epoch of saturated training of copies of ``model`` on ``data`` in each
    numerics, alternately. -> ({"float32": s, "paper": s, "exp then flush": s}, subnormal share of
    the first y)."""
    from nn.penalty import saturating_objective
    objective = saturating_objective(["sigmoid"] * 3, 1.74, 1e-3, units="mean")
    variants = {"float32": ("float32", contextlib.nullcontext),
                "paper": ("paper", contextlib.nullcontext),
                "exp then flush": ("paper", exp_then_flush)}
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, (numerics, mode) in variants.items():
            m, t = model.astype(model.dtype), time.perf_counter()
            with mode():
                train(m, data, TrainConfig(epochs=1, batch_size=batch, lr_decay=1.0,
                                           numerics=numerics),
                      objective=lambda mm, xb, yb, step, numerics: objective(
                          mm, xb, yb, step + 10 ** 6, numerics),
                      log=lambda s: None)
            times[name].append(time.perf_counter() - t)
    y1 = model.forward(data["train"][0][:2000])[1][2][2][1]  # the first sigmoid's outputs
    return ({k: float(np.median(v)) for k, v in times.items()},
            float(((y1 != 0) & (abs(y1) < 2.0 ** -126)).mean()))


def saturated_data(args, batch=128):
    """The model and ``args.steps`` batches that ``--flush-to-zero`` (MNIST) or ``--saturated``
    times: -> (``nn.model.Sequential``, {"train": (x (n, 1, 28, 28) float32, y (n,))}),
    n = args.steps * batch."""
    n = args.steps * batch
    if args.saturated:  # random images and labels
        x = np.random.default_rng(0).random((n, 1, 28, 28), dtype=np.float32)
        return saturated_sigmoid_mlp(x[:batch]), {"train": (x, np.arange(n) % 10)}
    from nn.checkpoint import load_checkpoint
    from nn.mnist import load_mnist
    x, y = load_mnist(args.data_dir)["train"]
    return load_checkpoint(args.flush_to_zero)[0], {"train": (x[5000:5000 + n], y[5000:5000 + n])}
