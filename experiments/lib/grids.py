"""The sweep's runs: saturated networks trained by the paper's method (eqs. 6-8, Adam, no
adversarial examples) across the settings the paper leaves open, each run a recipe
(``experiments.lib.recipes``) and a seed. ``experiments.beyond.sweep`` trains and evaluates them;
RESULTS.md, "How the regime arises", reads them.
"""
from __future__ import annotations

import dataclasses

from experiments.lib.paper import CONTROL
from experiments.lib.recipes import Recipe

# The penalty's phi per weight layer in the sweep's runs, unless a run sets its readout's
KINDS = {"sigmoid_mlp": ["sigmoid"] * 3, "relu_mlp": ["relu"] * 3,
         "cnn": ["relu", "relu", "relu", "linear"]}
# 25, 50, 100, ..., 51200: snapshots kept and evaluated
MILESTONES = tuple(25 * 2 ** k for k in range(12))


@dataclasses.dataclass(frozen=True)
class SweepRun:
    """One run of the sweep: a saturated recipe and a seed, the readable folder name ``name`` and
    the settings it was written with (``sweep_run``'s arguments, for the report's labels)."""
    recipe: Recipe
    seed: int
    name: str
    settings: dict


def sweep_run(arch="sigmoid_mlp", hidden=200, lam_max=1.74, lam_step=1e-3, units="mean",
              batch="mean", derivative="closed_form", numerics="paper", lr=1e-3, batch_size=128,
              epochs=1600, seed=0, max_train=None, channels=None, readout=None, adam_eps=None):
    """A run, written as the settings in which it differs from the lead (the paper's sigmoid-MLP
    lambda schedule, lam_step: lambda rises by this every step from 0 to lam_max; the paper's 1e-3
    reaches 1.74 after 1,740 steps, four epochs at batch 128). channels: the CNN's (default the
    paper's 32, 64); readout: the readout's phi ("linear": f(z) = z, the CNN's reading of the
    paper's last layer; "none": no penalty on the readout, the hidden layers' alone);
    adam_eps: Adam's epsilon (default 1e-8, TensorFlow's and ours). The folder name keeps the words
    it was first written with, so that runs trained before keep their folders: "-ftz" for the
    training numerics "paper" (TensorFlow's flush-to-zero), "-tfpenalty" for the penalty's
    derivative "autodiff"."""
    settings = dict(locals())
    kinds = list(KINDS[arch])
    if readout:
        kinds[-1] = None if readout == "none" else readout
    arch_kwargs = {"hidden": hidden,
                   **({"channels": list(channels or [32, 64])} if arch == "cnn" else {})}
    train = {"epochs": epochs, "lr": lr, "lr_decay": 1.0, "batch_size": batch_size,
             "max_train": max_train,
             "numerics": numerics, **({"eps": adam_eps} if adam_eps else {})}
    method = {"kinds": kinds, "lam_max": lam_max, "lam_step": lam_step, "units": units,
              "batch": batch, "derivative": derivative}
    name = (f"{arch}-h{hidden}-lam{lam_max:g}-step{lam_step:g}-{units}units-{batch}batch"
            f"-lr{lr:g}-bs{batch_size}")
    name += "-ftz" if numerics == "paper" else ""
    name += ("-tfpenalty" if derivative == "autodiff" else "") + f"-seed{seed}"
    name += (f"-n{max_train}" if max_train else "") + (f"-readout{readout}" if readout else "")
    name += ((f"-adameps{adam_eps:g}" if adam_eps else "")
             + ("-c" + "x".join(map(str, channels)) if channels else ""))
    # no penalty: the control recipe (plain cross-entropy), which Table 1's controls share
    if lam_max == 0:
        return SweepRun(Recipe.make(arch, CONTROL, arch_kwargs, train), seed, name, settings)
    return SweepRun(Recipe.make(arch, "saturated", arch_kwargs, train, method), seed,
                    name, settings)


LEAD = sweep_run().settings  # the lead's settings: a run's label lists where it differs


def short_label(settings):
    """The settings in which a run differs from the lead (epochs aside), e.g. 'lr 0.003, numerics
    float32'."""
    diff = [f"{k} {v}" for k, v in settings.items() if k not in ("arch", "epochs") and v != LEAD[k]]
    return ", ".join(diff) or "paper's lambda, units mean (the lead)"


# The grids, each in the order its runs are trained (the most informative first). Axes: penalty
# reduction over units and over the batch, lambda_max (a tenth to ten times the paper's), the
# annealing step, epochs (the milestones of long runs), width, learning rate, seed, the numerics
# (flush-to-zero, the penalty's derivative as TensorFlow computes it). The epochs axis comes from
# the milestones of each run; the other axes are compared at equal epochs (400 for most runs).
SIGMOID = [
    sweep_run(epochs=3200),                                       # 0 the lead, with
                                                                  # TensorFlow's flush-to-zero
    sweep_run(lam_max=17.4, lam_step=1e-2, epochs=400),           # 1 ten times the paper's lambda
    sweep_run(lr=3e-3, epochs=800),                               # 2 learning rate
    sweep_run(derivative="autodiff", epochs=800),                 # 3 TensorFlow's
                                                                  # penalty derivative
    sweep_run(numerics="float32", epochs=800),                    # 4 the lead as first
                                                                  # probed (no flush-to-zero)
    sweep_run(lam_max=0.174, lam_step=1e-4, epochs=400),          # 5 a tenth of the paper's lambda
    sweep_run(lam_step=1e-4, epochs=400),                         # 6 slower annealing (40 epochs)
    sweep_run(lr=1e-2, epochs=400),                               # 7
    sweep_run(lr=3e-4, epochs=400),                               # 8
    sweep_run(units="sum", lam_max=0.3, lam_step=1.5e-4, epochs=200),   # 9 the old Table 1 penalty
    sweep_run(units="sum", epochs=100),                           # 10 the paper's 1.74,
                                                                  # summed over units
    sweep_run(batch="sum", epochs=100),                           # 11 summed over the batch too
    sweep_run(batch="sum", lam_max=0.0136, lam_step=7.8e-6, epochs=400),  # 12 1.74 / 128: the
                                                                          # batch mean's size
    sweep_run(hidden=1000, epochs=400),                           # 13 the paper's width
    sweep_run(hidden=500, epochs=800),                            # 14
    sweep_run(hidden=2000, epochs=200),                           # 15
    sweep_run(seed=1, epochs=1600),                               # 16 seeds 1-4: the
                                                                  # regime's spread over seeds
    sweep_run(lam_max=5.5, lam_step=3e-3, epochs=400),            # 17
    sweep_run(lam_max=0.55, lam_step=3e-4, epochs=400),           # 18
    sweep_run(lr=3e-3, lam_max=17.4, lam_step=1e-2, epochs=400),  # 19
    sweep_run(lam_step=1e-2, epochs=400),                         # 20 faster annealing (0.4 epochs)
    sweep_run(derivative="autodiff", numerics="float32", epochs=400),         # 21
    sweep_run(batch_size=32, epochs=200),                         # 22 four times the
                                                                  # steps per epoch
    sweep_run(batch_size=512, epochs=400),                        # 23 a quarter
    sweep_run(hidden=500, adam_eps=1e-12, epochs=800),            # 24 width 500 (its margin
                                                                  # stalls) with a tiny Adam eps
    sweep_run(seed=2, epochs=1600),                               # 25
    sweep_run(seed=3, epochs=1600),                               # 26
    sweep_run(seed=4, epochs=1600),                               # 27
    sweep_run(hidden=1000, readout="none", epochs=400),           # 28 the paper's width,
                                                                  # no readout penalty
    sweep_run(hidden=1000, lam_max=0, lam_step=0, epochs=400),    # 29 its control:
                                                                  # no penalty at all
    sweep_run(seed=5, epochs=1600),                               # 30 the pinning
                                                                  # prediction on a new seed
]
RELU = [
    # 0 the paper's constants, long
    sweep_run(arch="relu_mlp", lam_max=3.99e-8, lam_step=1e-10, epochs=4800),
    sweep_run(arch="relu_mlp", lam_max=1e-2, lam_step=1e-5, epochs=400),
    sweep_run(arch="relu_mlp", lam_max=1.0, lam_step=1e-3, epochs=400),
    sweep_run(arch="relu_mlp", lam_max=1e-4, lam_step=1e-7, epochs=400),
    # the old Table 1 penalty
    sweep_run(arch="relu_mlp", lam_max=1e-2, lam_step=1e-5, units="sum", epochs=400),
    sweep_run(arch="relu_mlp", lam_max=0.1, lam_step=1e-4, epochs=400),
    sweep_run(arch="relu_mlp", lam_max=1.0, lam_step=1e-3, lr=3e-3, epochs=400),
    sweep_run(arch="relu_mlp", lam_max=3.99e-8, lam_step=1e-10, units="sum", epochs=400),
    sweep_run(arch="relu_mlp", lam_max=1e-2, lam_step=1e-5, numerics="float32", epochs=400),
    sweep_run(arch="relu_mlp", lam_max=10.0, lam_step=1e-2, epochs=400),
    sweep_run(arch="relu_mlp", hidden=1000, lam_max=1e-2, lam_step=1e-5, epochs=100),
    # the CNN's reading of the paper's last layer (f(z) = z on the readout, summed over units),
    # which brought the CNN into the regime: with the paper's ReLU lambda, and with the CNN's
    sweep_run(arch="relu_mlp", lam_max=3.99e-8, lam_step=1e-10, units="sum", readout="linear",
              epochs=800),
    sweep_run(arch="relu_mlp", lam_max=1e-5, lam_step=1e-5, units="sum", readout="linear",
              epochs=800),
]
CNN = [  # a narrow CNN (8 and 16 channels, 256 hidden units) to find the regime at a tolerable cost
    # the paper's constants, long: FGSM (paper numerics) 21 / 51 / 98.4 % at 25 / 50 / 100 epochs,
    # clean 98.7 / 98.6 / 98.7 %: at 100 FGSM meets clean accuracy, the regime (Table 1's CNN row
    # takes it)
    sweep_run(arch="cnn", channels=[8, 16], hidden=256, lam_max=1e-5, lam_step=1e-5, units="sum",
              epochs=100),
    sweep_run(arch="cnn", channels=[8, 16], hidden=256, lam_max=1e-2, lam_step=1e-5, epochs=50),
    sweep_run(arch="cnn", channels=[8, 16], hidden=256, lam_max=1.0, lam_step=1e-3, epochs=50),
    # no penalty
    sweep_run(arch="cnn", channels=[8, 16], hidden=256, lam_max=0.0, lam_step=0.0, epochs=50),
    sweep_run(arch="cnn", channels=[8, 16], hidden=256, lam_max=0.1, lam_step=1e-4, epochs=50),
    # the regime's settings at Table 2's width (32 and 64 channels, 1,024 hidden units; ~4.5x the
    # cost an epoch): FGSM 50.4 / 98.4 % at 25 / 50 epochs, clean 98.80 / 98.95 %: in the regime at
    # 50, where it stops (Table 1's CNN row takes it)
    sweep_run(arch="cnn", hidden=1024, lam_max=1e-5, lam_step=1e-5, units="sum", epochs=50),
]
# Each regime model of Table 1 without its penalty (Table 1's controls, snapshotted at the
# milestones): when, against epochs, the penalty's run and its control part (RESULTS, Table 1).
CONTROLS = [
    sweep_run(arch="relu_mlp", lam_max=0.0, lam_step=0.0, units="sum", readout="linear",
              epochs=800),
    sweep_run(lam_max=0.0, lam_step=0.0, epochs=1600),
    sweep_run(arch="cnn", hidden=1024, lam_max=0.0, lam_step=0.0, units="sum", epochs=50),
]
GRIDS = {
    "sigmoid": SIGMOID, "relu": RELU, "cnn": CNN, "controls": CONTROLS,
    # everything, the most informative runs of each architecture first
    # (the wide runs last: on 2 cores one epoch of width 2000 costs ~20 of width 200)
    "all": SIGMOID[:4] + RELU[:3] + SIGMOID[4:9] + RELU[3:5] + CNN[:2] + SIGMOID[9:13]
    + SIGMOID[16:28] + RELU[5:11]
    + CNN[2:5] + SIGMOID[13:16] + SIGMOID[28:] + RELU[11:] + CNN[5:] + CONTROLS,
    "quick": [
        sweep_run(hidden=16, epochs=6, max_train=10000, lam_step=1e-2),
        sweep_run(arch="relu_mlp", hidden=16, epochs=2, max_train=2000, lam_max=1e-2, lam_step=1e-3,
                  numerics="float32", readout="linear"),
    ],
}


