"""The shipped regime MLPs: the main job's saturated sigmoid and ReLU MLPs, committed under
``results/models/`` (weights only, each under 1 MB, loadable by ``nn.checkpoint.load_checkpoint``,
their SHA-256 in ``results/models/SHA256SUMS``). ``experiments.beyond.evaluate`` evaluates them;
``table1 --quick`` takes them for its two saturated MLPs (``experiments.lib.store.find_shipped``),
so the quick chain's analyses and figures see the regime without its hour of training.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from experiments.lib.cli import UsageError
from experiments.lib.records import RESULTS

SHIPPED = RESULTS / "models"  # the committed regime MLPs
NAMES = ("sigmoid_mlp-saturated", "relu_mlp-saturated")


def sha256(path):
    """The SHA-256 of a file's bytes, as 64 hex digits."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_shipped(path):
    """A shipped model's file matches its line in the SHA256SUMS beside it; else a UsageError
    naming the file."""
    path = Path(path)
    sums = dict(reversed(line.split())
                for line in (path.parent / "SHA256SUMS").read_text().splitlines() if line.strip())
    want = sums.get(path.name)
    if want is not None and sha256(path) != want:
        raise UsageError(f"{path}: its SHA-256 differs from {path.parent}/SHA256SUMS; restore it "
                         f"with `git checkout -- {path}`")

