"""Figures 5 and 8: the targeted L-BFGS-B attack (section 7) on the 10 x 10 source x target grid.

    python -m experiments.lbfgs_grid                           # six Table 1 models, 1000 iterations
    python -m experiments.lbfgs_grid --models sigmoid_mlp-saturated --sources most
    python -m experiments.lbfgs_grid --from runs/table1 --device gpu

Reads the checkpoints of ``python -m experiments.table1`` (``--from``); see
``experiments/lib/targeted_grid.py`` for what the run folder (default runs/lbfgs_grid) holds.
"""
from experiments.lib.cli import cli
from experiments.lib.targeted_grid import lbfgs_main as main

if __name__ == "__main__":
    cli(main)
