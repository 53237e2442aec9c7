"""Every script of satnets in one place: its module, its role, the claim it serves and what it
writes.

The tree says the role: ``experiments/<name>.py`` reproduces the paper, ``experiments/beyond/`` goes
beyond it, ``experiments/tools/`` compares and measures the code itself, and ``experiments/lib/`` is
the library they share (no script lives there). The index in ``experiments/README.md`` is rendered
from ``SCRIPTS`` (``python -m experiments.publish``), and ``tests/test_layout.py`` checks that the
tree and ``SCRIPTS`` agree.
"""
from __future__ import annotations

from dataclasses import dataclass

ROLES = {"paper": "reproduces the paper", "beyond": "goes beyond the paper", "tool": "a tool"}


@dataclass(frozen=True)
class Script:
    """One script: where it lives, what it is for, what it writes."""

    module: str  # run as ``python -m <module>``
    role: str  # a key of ROLES
    serves: str  # the paper's claim or the question it answers
    # what its run folder (default runs/<name>[-quick]) holds besides config.json, log.txt
    writes: str


SCRIPTS = {s.module.rsplit(".", 1)[1]: s for s in (
    Script("experiments.table1", "paper",
           "Table 1: clean and FGSM accuracy of the nine models (the main job)",
           "a checkpoint per model, table.json, table.md"),
    Script("experiments.train", "paper", "Table 1's clean accuracy, one model at a time",
           "model.npz, recipe.json, metrics.json"),
    Script("experiments.weights", "paper",
           "section 5, Figures 1-2: weight kurtosis, pre-activation histograms",
           "hist.npz, stats.json"),
    Script("experiments.rdm", "paper", "eq. 9, Figures 3 and 7: representational dissimilarity",
           "rdm.npz, ratios.json"),
    Script("experiments.fisher_path", "paper",
           "section 6, eqs. 10-13, Figure 4: length element and Jacobian spectrum along paths",
           "paths.npz, paths.json"),
    Script("experiments.kurtosis_linear", "paper",
           "section 8, Figure 6: kurtosis protects a linear read-out", "ratios.json"),
    Script("experiments.lbfgs_grid", "paper", "section 7, Figure 5: targeted L-BFGS on 90 pairs",
           "<model>-<sources>.npz, summary.json, summary.md"),
    Script("experiments.adam_attack", "paper", "section 7, Figure 8: targeted Adam on 90 pairs",
           "<model>-<sources>.npz, summary.json, summary.md"),
    Script("experiments.figures", "paper", "the paper's figures, redrawn from the run folders",
           "fig*.png"),
    Script("experiments.publish", "paper",
           "every table of README.md and RESULTS.md, rendered from results/",
           "the tables between the markers; --check fails where one differs"),
    Script("experiments.beyond.evaluate", "beyond",
           "the shipped regime MLPs: the masking seen in minutes, without training",
           "evaluation.json"),
    Script("experiments.beyond.audit", "beyond",
           "is the robustness real? PGD, APGD, Square, transfer, noise: the worst case per image",
           "audit.json, audit.md"),
    Script("experiments.beyond.verify", "beyond",
           "robust accuracy between a proof (IBP, CROWN, alpha-CROWN, MILP) and an attack",
           "verify.json, verify.md"),
    Script("experiments.beyond.logit_scale", "beyond",
           "FGSM against a prediction-preserving logit scale", "logit_scale.json, logit_scale.md"),
    Script("experiments.beyond.sweep", "beyond",
           "how the regime arises: a grid of saturated runs and snapshots",
           "a folder per run (checkpoints, snapshots), table.json, table.md, summary.md"),
    Script("experiments.beyond.silence", "beyond",
           "why a long run stops moving its margins (silent examples)",
           "silence.json, silence.md, silence-by-class.md"),
    Script("experiments.beyond.pinning", "beyond",
           "why seeds differ: one misclassified image pins its class", "pinning.json, pinning.md"),
    Script("experiments.beyond.common_mode", "beyond",
           "the wide readout's two brakes: its common mode, Adam's epsilon",
           "<run>.json, <run>.md"),
    Script("experiments.tools.bench", "tool", "speed beside PyTorch on the same weights",
           "(prints only)"),
    Script("experiments.tools.apgd_torchattacks", "tool",
           "our APGD beside torchattacks' on the same weights",
           "apgd_torchattacks.json, apgd_torchattacks.md"),
    Script("experiments.tools.auto_lirpa", "tool",
           "our proofs (IBP, CROWN, alpha-CROWN) beside auto_LiRPA's on the same weights",
           "auto_lirpa.json, auto_lirpa.md"),
)}


def module(name):
    """The module of script ``name`` (``audit`` -> ``experiments.beyond.audit``); KeyError if
    unknown."""
    return SCRIPTS[name].module


def index_markdown():
    """The one-screen index of ``experiments/README.md``: a table per role. -> str (Markdown)."""
    out = []
    for role, title in ROLES.items():
        out += [f"**{title[0].upper() + title[1:]}**", "", "| command | serves | writes |",
                "| --- | --- | --- |"]
        out += [f"| `python -m {s.module}` | {s.serves} | {s.writes} |"
                for s in SCRIPTS.values() if s.role == role]
        out.append("")
    return "\n".join(out).rstrip() + "\n"
