"""The quick presets, in one place: what ``--quick`` changes in every script. Not the paper's facts
(``experiments.lib.paper``) but smoke sizes: the same code paths in minutes on 2 CPUs (CI), each
script's quick run reading what ``table1 --quick`` wrote (``runs/<script>-quick``), so they chain.

``MODELS``: the Table 1 models' sizes; ``EVAL``: the evaluation's; ``OPTIONS``: each script's option
defaults under ``--quick`` (an option given explicitly wins, ``experiments.lib.cli.parse``). The
quick Table 1 takes the shipped regime MLPs (``experiments.lib.shipped``) for its saturated MLPs
(``table1 --shipped``), so the chain sees the regime; their quick sizes below stay for the controls,
the other seeds and ``--no-shipped``.
"""
from __future__ import annotations

# The quick preset: the same code paths as Table 1 at sizes that run in minutes on 2 CPUs (CI). Each
# quick model classifies some test image of every class correctly, which section 7's grids need.
MODELS = {
    "sigmoid_mlp": {"arch": {"hidden": 128}, "train": {"epochs": 2, "max_train": 10000}},
    "relu_mlp": {"arch": {"hidden": 128}, "train": {"epochs": 2, "max_train": 10000}},
    "cnn": {"arch": {"channels": [8, 16], "hidden": 128},
            "train": {"epochs": 1, "max_train": 5000}},
    "sigmoid_mlp-saturated": {"arch": {"hidden": 16}, "method": {"lam_step": 1e-2},
                              "train": {"epochs": 6, "max_train": 10000}},
    "relu_mlp-saturated": {"arch": {"hidden": 16}, "train": {"epochs": 2, "max_train": 2000}},
    "cnn-saturated": {"arch": {"channels": [4, 8], "hidden": 64},
                      "train": {"epochs": 1, "max_train": 5000}},
}
EVAL = {"n_test": 1000}

OPTIONS = {
    "table1": {"sweep": "runs/sweep-quick", "shipped": True},
    "rdm": {"per_class": 10},
    "kurtosis_linear": {"draws": 10},
    "fisher_path": {"points": 20},
    "lbfgs_grid": {"max_iter": 10},
    "adam_attack": {"max_iter": 100},
    "audit": {"n_test": 100, "n_test_cnn": 50, "pgd_steps": 10, "restarts": 2,
              "square_queries": 50, "sweep_steps": 5},
    "verify": {"n_test": 100, "sweep_steps": 5, "milp_max": 3, "milp_time": 5.0,
               "square_queries": 20, "ball_points": 20},
    "logit_scale": {"n_test": 200, "n_test_cnn": 50},
    "silence": {"n": 500},
    "apgd_torchattacks": {"n_test": 50, "steps": 10},
    "auto_lirpa": {"n_test": 20},
    "bench": {"steps": 20},
}
