"""Figures: the one place that imports matplotlib (the ``plots`` extra), and the colours every
figure shares. Without matplotlib nothing is drawn and the figure is recorded as skipped, so that a
script still writes its raw results and says in one line what it did not draw
(``experiments.lib.cli.cli``)."""
from __future__ import annotations

# one colour per training in every figure
COLOURS = {"vanilla": "tab:blue", "adversarial": "tab:green", "saturated": "tab:red",
           "control": "tab:orange"}

# figures not drawn for want of matplotlib; ``cli`` names them in one line when the script ends
SKIPPED_FIGURES = []


def save_figure(path, draw, shape=(1, 1), figsize=(6, 4), dpi=120, constrained=False):
    """Draw a PNG with matplotlib (the ``plots`` extra, Agg backend): ``draw(axes)`` fills the
    (rows, cols) array of axes; ``constrained`` lays it out with matplotlib's constrained layout
    (for figures with shared colour bars) instead of tight_layout. -> True, or False (nothing
    written, the path recorded in ``SKIPPED_FIGURES``) without matplotlib. The only place that
    imports matplotlib: ``draw`` runs only when it is there."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        SKIPPED_FIGURES.append(path)
        return False
    fig, axes = plt.subplots(*shape, figsize=figsize, squeeze=False,
                             layout="constrained" if constrained else None)
    draw(axes)
    if not constrained:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return True
