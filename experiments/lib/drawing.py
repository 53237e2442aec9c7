"""The paper's figures, drawn from the raw data the experiments saved: Figures 1-4 and 6
(``experiments.figures`` reads the run folders and calls these; section 7's grids are
``experiments.lib.targeted_grid``'s, the figures beyond the paper
``experiments.lib.drawing_beyond``'s). Each ``figure*`` writes a PNG and returns ``save_figure``'s
True, or False without matplotlib (the ``plots`` extra); ``figure2`` returns None when the data hold
none of its models."""
from __future__ import annotations

import numpy as np

from experiments.lib.plotting import COLOURS, save_figure
from experiments.lib.paper import ARCH_NAMES

RDM_SCALE_QUANTILE = 0.99  # each RDM is divided by this quantile of its entries, not its maximum
# singular values below this fraction of the largest are rounding noise (analysis.fisher)
SV_FLOOR = 1e-8
TRAININGS = ("vanilla", "saturated")  # the paper compares these two in Figures 1-4


def _layers(arrays, name, what):
    """Sorted layer numbers k with arrays '<name>/<what><k>/counts'."""
    return sorted(int(k.split("/")[1][len(what):]) for k in arrays
                  if k.startswith(f"{name}/{what}") and k.endswith("/counts"))


def _density(counts, edges):
    return counts / max(counts.sum(), 1) / np.diff(edges)


def figure1(hist, stats, arch, path):
    """Weight histograms per layer, vanilla and saturated overlaid."""
    names = [f"{arch}-{t}" for t in TRAININGS if f"{arch}-{t}" in stats]
    layers = _layers(hist, names[0], "W")

    def fill(axes):
        for c, k in enumerate(layers):
            ax = axes[0, c]
            kurtosis = []
            for name in names:
                t = name.split("-")[1]
                kurtosis.append(f"{t} {stats[name]['weights'][k - 1]['kurtosis']:.1f}")
                e, n = hist[f"{name}/W{k}/edges"], hist[f"{name}/W{k}/counts"]
                ax.stairs(_density(n, e), e, color=COLOURS[t], label=t)
            ax.set_yscale("log")
            ax.set_xlabel(f"weight W^{k}")
            ax.set_ylabel("density")
            # the kurtosis in the title and one legend above the panels: nothing covers the tails
            ax.set_title(f"{ARCH_NAMES[arch]}, layer {k}\nexcess kurtosis: {', '.join(kurtosis)}",
                         fontsize=9)
        axes[0, 0].figure.legend(*axes[0, 0].get_legend_handles_labels(),
                                 loc="outside upper center",
                                 ncol=len(names), fontsize=9, frameon=False)
    return save_figure(path, fill, (1, len(layers)), (4.2 * len(layers), 3.8), dpi=100,
                       constrained=True)


def figure2(hist, path):
    """Pre-activation histograms per layer: vanilla sigmoid, saturated sigmoid, saturated ReLU."""
    names = [n for n in ("sigmoid_mlp-vanilla", "sigmoid_mlp-saturated", "relu_mlp-saturated")
             if f"{n}/h1/counts" in hist]
    if not names:
        return None  # the run folder holds none of the figure's three models (e.g. only CNNs)
    n_layers = max(len(_layers(hist, n, "h")) for n in names)

    def fill(axes):
        for r, name in enumerate(names):
            for c in range(n_layers):
                ax = axes[r, c]
                k = c + 1
                e, n = hist[f"{name}/h{k}/edges"], hist[f"{name}/h{k}/counts"]
                ax.stairs(_density(n, e), e, fill=True, color=COLOURS[name.split("-")[1]])
                ax.set_yscale("log")
                ax.set_xlabel(f"pre-activation h^{k}" + (" (logits)" if k == n_layers else ""))
                ax.set_ylabel("density")
                ax.set_title(f"{name}, layer {k}")
    return save_figure(path, fill, (len(names), n_layers),
                       (4.2 * n_layers, 3.0 * len(names)), dpi=100)


def _block_mean(D, k):
    """D averaged over k x k blocks (M, M) -> (M // k, M // k): a 1000-image RDM drawn at 100 x 100
    keeps its class blocks and fits a small PNG."""
    m = D.shape[0] // k * k
    return D[:m, :m].reshape(m // k, k, m // k, k).mean(axis=(1, 3))


def figure3(mats, ratios, arch, path, k=10):
    """RDMs: rows vanilla / saturated, one column per layer, each D divided by its 99th percentile
    and drawn on one colour scale [0, 1], larger values at 1 (the raw scales differ by orders of
    magnitude between the two networks, and one outlying image would set a maximum that blanks the
    rest; the between/within ratio in each title is scale-free)."""
    names = [f"{arch}-{t}" for t in TRAININGS if f"{arch}-{t}/layer1" in mats]
    n_layers = max(sum(key.startswith(f"{n}/") for key in mats) for n in names)
    labels = np.array(ratios["labels"])
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    centres = ((starts + np.r_[starts[1:], len(labels)]) / 2 - 0.5) / k

    def fill(axes):
        for c in range(n_layers):
            for r, name in enumerate(names):
                D = mats[f"{name}/layer{c + 1}"]
                ax = axes[r, c]
                scale = max(float(np.quantile(D, RDM_SCALE_QUANTILE)), 1e-300)
                im = ax.imshow(np.minimum(_block_mean(D / scale, k), 1), cmap="viridis", vmin=0,
                               vmax=1, interpolation="nearest")
                ax.set_xticks(centres, labels[starts])
                ax.set_yticks(centres, labels[starts])
                ax.tick_params(length=0, labelsize=7)
                last = c + 1 == n_layers
                ax.set_title(f"{name.split('-')[1]}, {'readout' if last else f'layer {c + 1}'}: "
                             f"between/within {ratios['ratios'][name][c]:.2f}", fontsize=9)
                if r == len(names) - 1:
                    ax.set_xlabel("test image (by class)")
                if c == 0:
                    ax.set_ylabel(f"{ARCH_NAMES[arch]}\ntest image (by class)")
        axes[0, 0].figure.colorbar(im, ax=axes, shrink=0.6,
                                   label="D / (99th percentile of D), eq. 9")
    # square panels: the width follows the height, so the colour bar sits beside the last column
    return save_figure(path, fill, (len(names), n_layers),
                       (3.05 * n_layers + 1.1, 3.5 * len(names)), dpi=70, constrained=True)


def figure4(paths, arch, path):
    """Per class pair (columns): dl/dt, softmax trajectory, singular values (those below
    ``SV_FLOOR`` of the largest at the same point are rounding noise and not drawn); vanilla above
    saturated."""
    names = [f"{arch}-{t}" for t in TRAININGS if any(k.startswith(f"{arch}-{t}/") for k in paths)]
    pairs = sorted({k.split("/")[1] for k in paths if k.startswith(names[0] + "/")},
                   key=lambda p: [int(v) for v in p.split("-")])
    rows = [(n, what) for n in names for what in ("dl", "p", "sv")]

    def fill(axes):
        for c, pair in enumerate(pairs):
            for r, (name, what) in enumerate(rows):
                ax = axes[r, c]
                key = f"{name}/{pair}"
                t = paths[f"{key}/t"]
                training = name.split("-")[1]
                if what == "dl":
                    ax.plot(t, paths[f"{key}/dl"], color=COLOURS[training])
                    ax.set_ylabel("length element dl/dt")
                    ax.set_title(f"{ARCH_NAMES[arch]}, {training}: "
                                 f"path from a {pair.replace('-', ' to a ')}")
                elif what == "p":
                    ax.plot(t, paths[f"{key}/p"])
                    ax.set_ylabel("softmax p_k")
                    ax.set_ylim(-0.05, 1.05)
                else:
                    sv = paths[f"{key}/sv"]  # (points, 10)
                    ax.semilogy(t, np.where(sv >= SV_FLOOR * sv.max(axis=1, keepdims=True),
                                            sv, np.nan))
                    ax.set_ylabel("singular values of J\n(above 1e-8 of the largest)")
                ax.set_xlabel("t along the path")
    return save_figure(path, fill, (len(rows), len(pairs)),
                       (4.0 * len(pairs), 2.3 * len(rows)), dpi=60)


def figure6(ratios, path):
    """The linear read-out's robustness ratio R over its Gaussian value against excess kurtosis:
    Pearson VII weights (line, +- one standard deviation over draws) and every learned weight layer
    (points, one marker per model)."""
    p7 = ratios["pearson7"]
    base = p7[0]["mean"]
    markers = {"sigmoid_mlp-vanilla": "o", "sigmoid_mlp-saturated": "s", "relu_mlp-vanilla": "^",
               "relu_mlp-saturated": "D"}

    def fill(axes):
        ax = axes[0, 0]
        g = np.array([r["gamma2"] for r in p7])
        m = np.array([r["mean"] for r in p7]) / base
        sd = np.array([r["std"] for r in p7]) / base
        ax.plot(g, m, color="black", label="Pearson VII weights")
        ax.fill_between(g, m - sd, m + sd, color="0.8")
        for name, layers in ratios["learned"].items():
            ax.scatter([r["kurtosis"] for r in layers], [r["mean"] / base for r in layers],
                       marker=markers.get(name, "x"), color=COLOURS[name.split("-")[1]],
                       label=f"{name} layers")
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlabel("excess kurtosis gamma_2 of the weights")
        ax.set_ylabel("R / R(Gaussian)")
        ax.set_title("section 8: kurtosis protects a linear read-out")
        ax.legend(fontsize=8)
    return save_figure(path, fill, (1, 1), (7, 4.5), dpi=90)
