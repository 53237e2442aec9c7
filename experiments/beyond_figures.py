"""Figures beyond the paper, drawn from the run folders of the audit and the logit-scale probe
(``experiments.figures`` draws them beside the paper's)."""
from __future__ import annotations

from experiments.plotting import COLOURS, save_figure
from experiments.paper import ARCH_NAMES



def _arch_panels(names):
    """The architectures present among model names '<arch>-<training>', in ARCH_NAMES order."""
    return [a for a in ARCH_NAMES if any(n.startswith(f"{a}-") for n in names)]


def figure_audit(audit, path):
    """Accuracy against eps from the audit's eps sweep, one panel per architecture."""
    rows = audit["rows"]
    archs = _arch_panels([r["model"] for r in rows])
    folder = audit.get("options", {}).get("checkpoints", "?")  # one checkpoint set per figure: say which

    def fill(axes):
        for ax, arch in zip(axes[0], archs):
            for r in rows:
                if r["model"].startswith(f"{arch}-"):
                    training = r["model"][len(arch) + 1:]
                    ax.plot(r["eps"], r["curve"], marker=".", color=COLOURS.get(training.split("-")[0], "black"),
                            label=f"{training} (n = {r['n']})")
            ax.axvline(0.25, color="0.6", lw=0.8, ls=":")
            ax.set_ylim(-2, 102)
            ax.set_xlabel("eps (L-inf)")
            ax.set_ylabel("robust accuracy % (worst PGD)")
            ax.set_title(f"{ARCH_NAMES[arch]} (models of {folder})", fontsize=9)
            ax.legend(fontsize=8)
    return save_figure(path, fill, (1, len(archs)), (4.5 * len(archs), 3.6), dpi=80)


def figure_logit_scale(ls, path):
    """FGSM accuracy (top) and exactly-zero input gradients (bottom) against the logit scale c."""
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
                fgsm = [s["accuracy"].get("fgsm-ce-float32", s["accuracy"].get("fgsm-ce-paper"))  # (older files)
                        for s in r["scales"]]
                top.plot(c, fgsm, marker=".", color=colour)
                top.plot(c, [s["accuracy"]["fgsm-margin-stable"] for s in r["scales"]], ls="--", color=colour)
                bottom.plot(c, [100 * s["zero_gradient_fraction"] for s in r["scales"]], marker=".", color=colour,
                            label=training)
            for ax in (top, bottom):
                ax.set_xscale("log", base=2)
                ax.set_ylim(-2, 102)
            top.set_title(f"{ARCH_NAMES[arch]}: cross-entropy in float32 (solid), margin loss (dashed)", fontsize=9)
            top.set_ylabel("FGSM accuracy % (eps 0.25)")
            bottom.legend(fontsize=8, loc="lower right")  # the curves rise to the right: that corner is empty
            bottom.set_xlabel("logit scale c (predictions unchanged)")
            bottom.set_ylabel("exactly-zero gradients %")
    return save_figure(path, fill, (2, len(archs)), (4.5 * len(archs), 6.0), dpi=80)
