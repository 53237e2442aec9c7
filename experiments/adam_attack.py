"""Section 7: the targeted attack by Adam on the input, on the 10 x 10 source x target grid.

    python -m experiments.adam_attack                     # six Table 1 models, 10,000 iterations
    python -m experiments.adam_attack --max-iter 100000 --device gpu
    python -m experiments.adam_attack --models cnn-saturated --lr 0.005

Reads the checkpoints of ``python -m experiments.table1`` (``--from``); see
``experiments/lib/targeted_grid.py`` for what the run folder (default runs/adam_attack) holds.
"""
from experiments.lib.cli import cli
from experiments.lib.targeted_grid import adam_main as main

if __name__ == "__main__":
    cli(main)
