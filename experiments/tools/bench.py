"""Throughput benchmark: satnets against PyTorch on the same machine, and against the matmul peak.

    python -m experiments.tools.bench [--device gpu] [--steps K] [--profile] [--no-retain]
        [--no-torch]
    python -m experiments.tools.bench --flush-to-zero runs/sweep/<run>/snap-e800.npz
        # its effect on speed
    python -m experiments.tools.bench --saturated
        # the same on a synthetic deeply saturated sigmoid MLP

With PyTorch installed (the ``bench`` extra), first a side-by-side comparison: for the paper's three
architectures (MLPs 784-1000-1000-10, the Table 2 CNN) built with the *same weights* on both sides
(``experiments.lib.torch_twin``), each workload (a training step at batch 128: forward, mean
cross-entropy, backward, Adam; the input gradient of the cross-entropy, what FGSM uses, at batch
500; the input Jacobian of 100 images, against ``vmap(jacrev)``) is timed alternately satnets,
PyTorch, satnets, ... in one process, and the table gives the median of each and their ratio
(satnets / PyTorch: below 1 is faster). Both sides use all the machine's cores (OpenBLAS's and
PyTorch's threads). On the GPU (``--device gpu``) the same against PyTorch on CUDA.

Then it prints (1) the float32 throughput of one large ``xp.matmul`` (n = 4096), and (2) for the
784-1000-1000-10 ReLU MLP and the paper's CNN at batch 128, the achieved GFLOP/s of a training
epoch (forward, backward, Adam) counting only the matrix products, 2 FLOPs per multiply-add (a
convolution counted as its im2col product), and the ratio of the two. Random data of MNIST's shape
stand in for the images: throughput does not depend on pixel values. The run folder (``--out``,
default runs/bench) holds config.json and bench.json, every number printed
(``python -m experiments.publish --record bench --from runs/bench`` publishes it).

With ``--flush-to-zero CHECKPOINT`` (a saturated sigmoid MLP, e.g. a snapshot of
``experiments.beyond.sweep``) it instead times saturated training steps on MNIST (the paper's
penalty, units="mean", lambda 1.74) from that checkpoint in the numerics "float32", "paper"
(flush-to-zero) and "paper" by exp then flush (``nn.numerics.exp_then_flush``), alternating, and
prints the median time of each and the share of subnormal values among the first hidden layer's
outputs: there, the pixel values do matter (x86 processes subnormals many times more slowly).
``--saturated``: the same for ``saturated_sigmoid_mlp``.
"""
from __future__ import annotations

import argparse
import cProfile
import os

import numpy as np

from experiments.lib import presets
from experiments.lib.benchmarks import (compare_with_torch, epoch_gflops, flush_to_zero_timing,
                                        matmul_gflops, print_profile, saturated_data)
from experiments.lib.cli import UsageError, add_common_args, cli, summary, parse, count
from experiments.lib.runs import Run, hardware, write_json
from nn.architectures import cnn, mlp
from nn.backend import retain_freed_memory


def main(argv=None):
    """Time satnets beside PyTorch and against the matmul peak, or (--flush-to-zero, --saturated)
    saturated training in each numerics; print the results. -> {numerics: seconds} for the latter,
    else what it wrote to the run folder's bench.json (the PyTorch comparison's seconds per call,
    the matmul peak, each epoch's seconds and GFLOP/s)."""
    parser = add_common_args(argparse.ArgumentParser(description=summary(__doc__)))
    parser.add_argument("--steps", type=count, default=430,
                        help="training steps per model (430 = one epoch of 55k)")
    parser.add_argument("--profile", action="store_true",
                        help="also print where each step's time goes (cProfile)")
    parser.add_argument("--no-retain", action="store_true",
                        help="leave glibc's allocator at its defaults (see "
                             "nn.backend.retain_freed_memory)")
    parser.add_argument("--flush-to-zero", metavar="CHECKPOINT", default=None,
                        help="time saturated training from this checkpoint with and without "
                             "flush-to-zero")
    parser.add_argument("--no-torch", action="store_true", help="skip the comparison with PyTorch")
    parser.add_argument("--only-torch", action="store_true",
                        help="only the comparison with PyTorch")
    parser.add_argument("--saturated", action="store_true",
                        help="--flush-to-zero on saturated_sigmoid_mlp")
    args = parse(parser, argv, quick=presets.OPTIONS["bench"])
    if args.flush_to_zero or args.saturated:
        t, sub = flush_to_zero_timing(*saturated_data(args))
        print(f"{hardware()}; {args.flush_to_zero or 'saturated_sigmoid_mlp'}: {100 * sub:.1f} % "
              f"of the first hidden layer's outputs are subnormal; {args.steps} saturated training "
              "steps (medians of 3, alternating):")
        print(", ".join(f"{k} {1e3 * v / args.steps:.2f} ms/step ({v / t['paper']:.2f} x paper)"
                        for k, v in t.items()))
        return t
    run = Run("bench", args, retain=False)
    xp = run.xp
    retained = xp is np and not args.no_retain and retain_freed_memory()
    print(f"{hardware()}, device {run.device}, freed memory retained for reuse: {retained}")
    result = {"device": run.device, "retained": bool(retained),
              "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"), "torch": None,
              "peak_gflops": None, "epochs": []}
    if xp is np and os.environ.get("OPENBLAS_CORETYPE"):
        print(f"note: OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} holds numpy's OpenBLAS "
              "to that processor's kernels while PyTorch picks its own; for like against like run "
              "this command with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE` (RESULTS, "
              "Performance)")
    from experiments.lib.torch_twin import torch_available
    if args.only_torch and not torch_available():
        raise UsageError("--only-torch needs PyTorch: pip install -e '.[bench]'")
    if not args.no_torch:
        if torch_available():
            import torch
            rows = compare_with_torch(xp, args.device, args.quick)
            result["torch"] = {"version": torch.__version__, "threads": torch.get_num_threads(),
                               "rows": [{"workload": n, "satnets_seconds": ours,
                                         "torch_seconds": theirs} for n, ours, theirs in rows]}
        else:
            print("PyTorch is not installed: no comparison (pip install -e '.[bench]')")
        if args.only_torch:
            return _written(run, result)
    peak = matmul_gflops(xp)
    result["peak_gflops"] = peak
    print(f"matmul peak (4096^3 float32): {peak:8.1f} GFLOP/s")
    for name, spec in [("mlp 784-1000-1000-10", mlp("relu", hidden=1000)),
                       ("cnn (Table 2)", cnn())]:
        steps = args.steps
        profiler = cProfile.Profile() if args.profile else None
        if profiler:
            profiler.enable()
        gf, dt = epoch_gflops(spec, xp, steps)
        print(f"{name:22s} {steps} steps in {dt:6.2f} s: {gf:8.1f} GFLOP/s, "
              f"ratio to peak {gf / peak:.2f}")
        result["epochs"].append({"model": name, "steps": steps, "seconds": dt, "gflops": gf})
        if profiler:
            profiler.disable()
            print_profile(profiler, steps + 1)  # + 1: the warm-up step
    return _written(run, result)


def _written(run, result):
    """Write ``result`` as the run folder's bench.json and say where. -> result."""
    write_json(run.path("bench.json"), result)
    print(f"wrote {run.path('bench.json')}")
    return result


if __name__ == "__main__":
    cli(main)
