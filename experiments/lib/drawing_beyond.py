"""The figures of the scripts beyond the paper, from the data they computed: the audit's eps curves
and the logit-scale probe (redrawn by ``experiments.figures`` from their run folders), the bracket
of ``experiments.beyond.verify``, the common-mode test's trajectories
(``experiments.beyond.common_mode``) and the pinned class of ``experiments.beyond.pinning``. The
paper's own figures are ``experiments.lib.drawing``'s. A ``figure*`` draws and writes a PNG
(-> ``save_figure``'s True, or False without matplotlib); a ``draw_*`` fills the axes that its
script hands to ``save_figure``."""
from __future__ import annotations

import re

from experiments.lib.intervention import ADAM_EPS, DROPPED
from experiments.lib.plotting import COLOURS, save_figure
from experiments.lib.paper import ARCH_NAMES
from experiments.lib.verification import METHOD_NAMES


def _arch_panels(names):
    """The architectures present among model names '<arch>-<training>', in ARCH_NAMES order."""
    return [a for a in ARCH_NAMES if any(n.startswith(f"{a}-") for n in names)]


def figure_audit(audit, path):
    """Accuracy against eps from the audit's eps sweep (audit.json's dict), one panel per
    architecture, into the PNG ``path``."""
    rows = audit["rows"]
    archs = _arch_panels([r["model"] for r in rows])
    # one checkpoint set per figure: say which
    folder = audit.get("options", {}).get("checkpoints", "?")

    def fill(axes):
        for ax, arch in zip(axes[0], archs):
            for r in rows:
                if r["model"].startswith(f"{arch}-"):
                    training = r["model"][len(arch) + 1:]
                    ax.plot(r["eps"], r["curve"], marker=".",
                            color=COLOURS.get(training.split("-")[0], "black"),
                            label=f"{training} (n = {r['n']})")
            ax.axvline(0.25, color="0.6", lw=0.8, ls=":")
            ax.set_ylim(-2, 102)
            ax.set_xlabel("eps (L-inf)")
            ax.set_ylabel("robust accuracy % (worst PGD)")
            ax.set_title(f"{ARCH_NAMES[arch]} (models of {folder})", fontsize=9)
            ax.legend(fontsize=8)
    return save_figure(path, fill, (1, len(archs)), (4.5 * len(archs), 3.6), dpi=80)


def figure_logit_scale(ls, path):
    """FGSM accuracy (top) and exactly-zero input gradients (bottom) against the logit scale c, from
    logit_scale.json's dict, into the PNG ``path``."""
    results = ls["results"]
    archs = _arch_panels([r["model"] for r in results])

    def fill(axes):
        for col, arch in enumerate(archs):
            top, bottom = axes[0, col], axes[1, col]
            for r in results:
                if not r["model"].startswith(f"{arch}-"):
                    continue
                training = r["model"][len(arch) + 1:]
                colour = COLOURS.get(training.split("-")[0], "black")
                c = [s["scale"] for s in r["scales"]]
                # (older files)
                fgsm = [s["accuracy"].get("fgsm-ce-float32", s["accuracy"].get("fgsm-ce-paper"))
                        for s in r["scales"]]
                top.plot(c, fgsm, marker=".", color=colour)
                top.plot(c, [s["accuracy"]["fgsm-margin-stable"] for s in r["scales"]],
                         ls="--", color=colour)
                bottom.plot(c, [100 * s["zero_gradient_fraction"] for s in r["scales"]], marker=".",
                            color=colour, label=training)
            for ax in (top, bottom):
                ax.set_xscale("log", base=2)
                ax.set_ylim(-2, 102)
            top.set_title(f"{ARCH_NAMES[arch]}: cross-entropy in float32 (solid), "
                          "margin loss (dashed)", fontsize=9)
            top.set_ylabel("FGSM accuracy % (eps 0.25)")
            # the curves rise to the right: that corner is empty
            bottom.legend(fontsize=8, loc="lower right")
            bottom.set_xlabel("logit scale c (predictions unchanged)")
            bottom.set_ylabel("exactly-zero gradients %")
    return save_figure(path, fill, (2, len(archs)), (4.5 * len(archs), 6.0), dpi=80)


def draw_verify(axes, rows):
    """One panel per model row of ``experiments.beyond.verify``: the share verified by each method
    (lower bounds), the attacked share (upper bound) and the undecided band between them, against
    eps (log scale); panels beyond len(rows) hidden."""
    for ax, r in zip(axes.ravel(), rows):
        ax.fill_between(r["eps"], r["verified"], r["attacked"], color="0.85", label="undecided")
        ax.plot(r["eps"], r["attacked"], marker="o", color="black", label="attacked (upper bound)")
        for m, mark in zip(r["methods"], "s^vD"):
            ax.plot(r["eps"], r["verified_by"][m], marker=mark,
                    label=f"verified by {METHOD_NAMES[m]} (lower bound)")
        ax.set_xscale("log")
        ax.set_xticks(r["eps"], [f"{e:g}" for e in r["eps"]])  # the radii measured, no others
        ax.minorticks_off()
        ax.set_ylim(0, 100)
        ax.set_xlabel("eps (L-inf)")
        ax.set_ylabel("robust accuracy (%)")
        ax.set_title(f"{r['model']}, first {r['n']} test images", fontsize=10)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(rows):]:
        ax.set_visible(False)


def figure_verify(rows, path):
    """verify.json's model rows, one panel per model (``draw_verify``), three to a line, into the
    PNG ``path``. -> whether it was drawn (False without matplotlib)."""
    cols = min(3, len(rows))
    lines = -(-len(rows) // cols)
    return save_figure(path, lambda axes: draw_verify(axes, rows), shape=(lines, cols),
                       figsize=(5 * cols, 4 * lines))


def draw_common_mode(axes, rows, source, records):
    """Median margin and common mode against epochs, one line per run (the source, then its
    continuations, labelled from their intervention ``records``: {folder name: record or None}); a
    run with another Adam epsilon drawn from the shifted run's point it continues."""
    for ax, key, label, where in zip(axes[0], ("margin", "common_mode"),
                                     ("median logit margin", "common mode of the readout"),
                                     ("upper left", "center right")):
        for name, rs in rows.items():
            rec = records.get(name) or {}
            tag = ("the run" if name == source else "control" if "readout_shift" not in rec else
                   f"shifted, Adam eps {rec[ADAM_EPS]:g} from epoch {rec['adam_eps_from']}"
                   if ADAM_EPS in rec else "shifted")
            if ADAM_EPS in rec:  # its first point: the shifted run where it forked
                rs = [r for r in rows.get(name[:name.rindex("-eps")], [])
                      if r["epoch"] == rec["adam_eps_from"]] + rs
            ax.plot([r["epoch"] for r in rs], [r[key] for r in rs], marker=".", label=tag)
        ax.axhline(0, color="0.7", lw=0.8)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend(fontsize=8, loc=where)


def draw_pinning(axes, rows, k, first):
    """Class k's median own-class training logit (left) and median test margin (right) against
    epochs, one line per run folder; dashed, the pinned logit z* and margin 2 z* of run ``first``'s
    last snapshot where class k is pinned there."""
    z_star = [r for r in rows if r["run"] == first][-1]["pinned_logit"][k]
    for ax, key, label, times in ((axes[0][0], "z_correct_by_class",
                                   f"class {k}: median own-class logit (training)", 1),
                                  (axes[0][1], "margin_by_class_test",
                                   f"class {k}: median test margin", 2)):
        for name in dict.fromkeys(r["run"] for r in rows):
            rs = [r for r in rows if r["run"] == name and r[key][k] is not None]
            ax.plot([r["epoch"] for r in rs], [r[key][k] for r in rs], marker=".",
                    label=_pinning_label(name, rows))
        if z_star:
            ax.axhline(times * z_star, color="0.5", ls="--", lw=0.8,
                       label=f"{'2 ' if times == 2 else ''}z* = {times * z_star:.2f}")
        ax.set_xscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
    handles, labels = axes[0][1].get_legend_handles_labels()
    if z_star:  # the left panel's z* line beside the right's 2 z*
        handles.append(axes[0][0].get_legend_handles_labels()[0][-1])
        labels.append(f"z* = {z_star:.2f}")
    # outside: the lines fill the axes
    axes[0][1].legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))


def _pinning_label(name, rows):
    """A run folder's legend label: seed and intervention."""
    rec = next(r["intervention"] for r in rows if r["run"] == name)
    seed = re.search(r"-seed(\d+)", name).group(1)
    if not rec:
        return f"seed {seed}"
    images = ", ".join(map(str, rec[DROPPED]))
    control = (f" (control for {', '.join(map(str, rec['control_for']))})"
               if "control_for" in rec else "")
    return f"seed {seed}, from epoch {rec['at_epoch']} without image {images}{control}"
