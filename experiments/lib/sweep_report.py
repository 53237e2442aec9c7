"""The sweep's report: per run and milestone a table row, each run's last milestone, the frontier of
FGSM against clean accuracy, and two figures (the runs against epochs; the mechanism: exact float32
zeros predicted, then measured). Column names follow ``experiments.lib.evaluation``."""
from __future__ import annotations

from pathlib import Path

from experiments.lib import paper
from experiments.lib.paper import ARCH_NAMES
from experiments.lib.runs import read_json, write_json
from experiments.lib.evaluation import percent
from experiments.lib.plotting import save_figure
from experiments.lib.grids import GRIDS, MILESTONES, short_label
from experiments.lib.recipes import model_key, table1_recipes
from experiments.lib.store import RECIPE_FILE


def snapshots(folder):
    """The run's snapshots snap-e<epoch>.npz, by epoch."""
    return sorted(Path(folder).glob("snap-e*.npz"), key=lambda p: int(p.stem[len("snap-e"):]))


def collect(root):
    """-> list of rows, one per run and evaluated milestone ({"run", "arch", "label", "seed",
    **record}), sorted by run then epoch."""
    rows = []
    for folder in sorted(Path(root).glob("*/")):
        info = read_json(folder / RECIPE_FILE, None)
        if info is None:
            continue
        for snap in snapshots(folder):
            rec = read_json(snap.with_name(f"eval-e{snap.stem[len('snap-e'):]}.json"), None)
            if rec:
                rows.append({"run": folder.name, "arch": info["recipe"]["arch"],
                             "seed": info["seed"], "label": short_label(info["settings"]), **rec})
    return rows


def format_table(rows):
    """Markdown: one line per row of ``collect`` (run and milestone): clean and FGSM accuracies in
    each numerics, exactly-zero gradients measured and predicted, the median margin, the median |h|
    per layer, training minutes. -> str."""
    head = ("| run | epoch | clean % | FGSM paper % | FGSM paper, permuted units/channels % | "
            "FGSM float32 % | FGSM stable % | FGSM margin stable % | zero grads paper % | "
            "predicted: path / margin % | median margin | median abs h per layer | train min |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in rows:
        perm = r.get("fgsm_paper_permuted") or []
        perm = f"{100 * min(perm):.1f}-{100 * max(perm):.1f}" if perm else "-"
        lines.append(f"| {r['run']} | {r['epoch']} | {100 * r['clean_acc']:.2f} | "
                     f"{100 * r['fgsm_paper']:.1f} | {perm} | {percent(r['fgsm_float32'])} | "
                     f"{100 * r['fgsm_stable']:.1f} | {100 * r['fgsm_margin_stable']:.1f} | "
                     f"{100 * r['zero_grad_paper']:.1f} | {percent(r.get('zero_pred_path_paper'))} "
                     f"/ {percent(r.get('zero_pred_margin_paper'))} | {r['margin_q'][2]:.1f} | "
                     f"{' / '.join(f'{q[2]:.1f}' for q in r['depth_q'])} | "
                     f"{(r['train_seconds'] or 0) / 60:.0f} |")
    return "\n".join(lines) + "\n"


def frontier(rows):
    """The best paper-numerics FGSM accuracy reached at each clean accuracy (per arch, any run, any
    milestone): -> {arch: [(clean %, best FGSM paper % among rows at least this clean), ...]}."""
    out = {}
    for arch in sorted({r["arch"] for r in rows}):
        rs = sorted((r for r in rows if r["arch"] == arch), key=lambda r: -r["clean_acc"])
        best, pts = -1.0, []
        for r in rs:
            if r["fgsm_paper"] > best:
                best = r["fgsm_paper"]
                point = (round(100 * r["clean_acc"], 2), round(100 * best, 1))
                if pts and pts[-1][0] == point[0]:
                    pts[-1] = point  # the same clean accuracy: keep the best
                else:
                    pts.append(point)
        out[arch] = pts
    return out




def draw(rows, path):
    """One row of panels per architecture: FGSM accuracy (paper numerics) and the median logit
    margin against epochs, one line per run; FGSM against clean accuracy with the paper's saturated
    model; the runs' legend beside them (inside a panel it hid lines)."""
    archs = [a for a in ARCH_NAMES if any(r["arch"] == a for r in rows)]

    def fill(axes):
        import matplotlib  # save_figure calls fill only when matplotlib is installed
        colours = matplotlib.colormaps["tab20"].colors  # more runs per panel than tab10 has colours
        for row_axes, arch in zip(axes, archs):
            ax, mx, bx, lx = row_axes
            rs = [r for r in rows if r["arch"] == arch]
            # runs that learned
            floor = min((100 * r["clean_acc"] for r in rs if r["clean_acc"] >= 0.9), default=1) - 1
            collapsed = 0
            for k, run in enumerate(sorted({r["run"] for r in rs})):
                rr = [r for r in rs if r["run"] == run]
                colour = colours[k % len(colours)]
                ax.plot([r["epoch"] for r in rr], [100 * r["fgsm_paper"] for r in rr], marker="o",
                        ms=3, color=colour,
                        ls="-" if k < len(colours) else "--", label=rr[0]["label"])
                mx.plot([r["epoch"] for r in rr], [max(r["margin_q"][2], 0.1) for r in rr],
                        marker="o", ms=3, color=colour)
                kept = [r for r in rr if 100 * r["clean_acc"] >= floor]
                collapsed += len(rr) - len(kept)
                bx.scatter([100 * r["clean_acc"] for r in kept],
                           [100 * r["fgsm_paper"] for r in kept], s=12, color=colour)
            ticks = [m for m in MILESTONES if m <= max(r["epoch"] for r in rs)]
            for a in (ax, mx):
                a.set_xscale("log")
                # the milestones are the ticks; log minor labels would overlap them
                a.minorticks_off()
                if ticks:
                    a.set_xticks(ticks, [str(m) for m in ticks])
                a.set_xlabel("epochs (constant learning rate)")
            ax.set_ylabel("FGSM accuracy, eps 0.25 (%)")
            ax.set_title(f"{ARCH_NAMES[arch]}: FGSM in the paper's numerics")
            ax.set_ylim(0, 100)
            lx.axis("off")
            lx.legend(*ax.get_legend_handles_labels(), fontsize=7, loc="center left", frameon=False,
                      title=f"{ARCH_NAMES[arch]} runs", title_fontsize=8)
            mx.axhline(87.3, color="gray", ls="--", lw=0.8)
            mx.set_yscale("log")  # from collapsed runs (~0) to runaway CNN logits (~1e8)
            mx.set_ylim(0.1, max(mx.get_ylim()[1], 300))
            mx.text(0.02, 95, "p_j flushes to 0 (log 2^-126)", fontsize=7, color="gray",
                    transform=mx.get_yaxis_transform())  # x in axes fraction, y in data
            mx.set_ylabel("median logit margin z_y - max z_j (log; 0.1 = <= 0.1)")
            mx.set_title(f"{ARCH_NAMES[arch]}: logit margin")
            c, f = paper.TABLE1[f"{arch}-saturated"]
            bx.scatter([c], [f], marker="*", s=160, color="black",
                       label="the paper's saturated model")
            bx.axvline(c - 1, color="gray", ls=":", lw=0.8)
            bx.set_xlim(min(floor, c - 2), 100)
            bx.set_xlabel("clean test accuracy (%)"
                          + (f"; {collapsed} milestones below {floor:.0f} % not shown"
                                                         if collapsed else ""))
            bx.set_ylabel("FGSM accuracy, eps 0.25 (%)")
            bx.set_ylim(0, 100)
            bx.set_title(f"{ARCH_NAMES[arch]}: every run and milestone")
            bx.legend(fontsize=7, loc="lower left")
    return save_figure(path, fill, shape=(len(archs), 4), figsize=(21, 4.6 * len(archs)), dpi=72)


def fgsm_from_zeros(r):
    """The paper-numerics FGSM accuracy predicted from two measurements: an image whose float32
    gradient is exactly 0 is not moved (sign(0) = 0) and stays correct, the others fall as they do
    under the true gradient's direction: z + (1 - z) a_stable (z: zero-gradient share)."""
    z = r["zero_grad_paper"]
    return z + (1 - z) * r["fgsm_stable"]


def draw_mechanism(rows, path):
    """Measured fraction of exactly-zero input gradients (paper numerics) against the fraction
    predicted from depths and margins (max-plus path bound, MLPs) and from the margin alone (every
    model), for every run and milestone; the diagonal is a perfect prediction. Right: FGSM in the
    paper's numerics against ``fgsm_from_zeros``."""
    rs = [r for r in rows if r.get("zero_pred_margin_paper") is not None]

    def fill(axes):
        ax, bx = axes[0]
        for arch, marker in (("sigmoid_mlp", "o"), ("relu_mlp", "s"), ("cnn", "^")):
            rr = [r for r in rs if r["arch"] == arch]
            if not rr:
                continue
            bounded = [r for r in rr if r.get("zero_pred_path_paper") is not None]
            if bounded:
                ax.scatter([100 * r["zero_pred_path_paper"] for r in bounded],
                           [100 * r["zero_grad_paper"] for r in bounded],
                           marker=marker, s=14,
                           label=f"{ARCH_NAMES[arch]}: path bound (depths and margin)")
            ax.scatter([100 * r["zero_pred_margin_paper"] for r in rr],
                       [100 * r["zero_grad_paper"] for r in rr],
                       marker=marker, s=14, facecolors="none", edgecolors="gray",
                       label=f"{ARCH_NAMES[arch]}: margin alone")
            bx.scatter([100 * fgsm_from_zeros(r) for r in rr], [100 * r["fgsm_paper"] for r in rr],
                       marker=marker, s=14, label=ARCH_NAMES[arch])
        ax.plot([0, 100], [0, 100], color="black", lw=0.8)
        ax.set_xlabel("predicted exactly-zero input gradients (%)")
        ax.set_ylabel("measured exactly-zero input gradients (%)")
        ax.set_title("exact float32 zeros: predicted, then measured")
        ax.legend(fontsize=7)
        bx.plot([0, 100], [0, 100], color="black", lw=0.8)
        bx.set_xlabel("z + (1 - z) x FGSM accuracy with stable derivatives (%)\n(z: "
                      "share of exactly-zero gradients)")
        bx.set_ylabel("FGSM accuracy, eps 0.25, paper numerics (%)")
        bx.set_title("FGSM = unmoved images + true-gradient survivors")
        bx.legend(fontsize=7)
    return bool(rs) and save_figure(path, fill, shape=(1, 2), figsize=(12, 5))


def draw_controls(rows, path):
    """Each of Table 1's saturated models beside its control (the same recipe without the penalty),
    against epochs: FGSM accuracy in the paper's numerics, the share of exactly-zero input gradients
    (paper numerics) and the median logit margin; one row per architecture with both runs present
    (seed 0). Penalty solid, control dashed: where the two part is what the penalty adds."""
    recipes = table1_recipes()

    def runs_of(name):  # the rows of the sweep's runs that train Table 1's model ``name``, seed 0
        key = model_key(recipes[name], 0)
        names = {r.name for r in GRIDS["all"] if model_key(r.recipe, r.seed) == key}
        return [r for r in rows if r["run"] in names]
    pairs = []
    for arch in paper.ARCHS:
        runs = [runs_of(f"{arch}-{t}") for t in ("saturated", paper.CONTROL)]
        if all(runs):
            pairs.append((arch, runs))

    def fill(axes):
        for (arch, runs), row_axes in zip(pairs, axes):
            for rr, training, ls in zip(runs, ("saturated", paper.CONTROL), ("-", "--")):
                rr = sorted(rr, key=lambda r: r["epoch"])
                e = [r["epoch"] for r in rr]
                label = "with the penalty" if training == "saturated" else "control: no penalty"
                row_axes[0].plot(e, [100 * r["fgsm_paper"] for r in rr], ls=ls, marker="o", ms=3,
                                 color="black", label=label)
                row_axes[1].plot(e, [100 * r["zero_grad_paper"] for r in rr], ls=ls, marker="o",
                                 ms=3, color="black")
                row_axes[2].plot(e, [max(r["margin_q"][2], 0.1) for r in rr], ls=ls, marker="o",
                                 ms=3, color="black")
            ticks = [m for m in MILESTONES if m <= max(r["epoch"] for rr in runs for r in rr)]
            for ax, what in zip(row_axes, ("FGSM accuracy, eps 0.25, paper's numerics (%)",
                                           "exactly-zero input gradients (%)",
                                           "median logit margin (log)")):
                ax.set_xscale("log")
                ax.minorticks_off()  # the milestones are the ticks
                ax.set_xticks(ticks, [str(m) for m in ticks])
                ax.set_xlabel("epochs (constant learning rate)")
                ax.set_ylabel(what)
                ax.set_title(f"{ARCH_NAMES[arch]}: {what.split(',')[0].split(' (')[0]}",
                             fontsize=10)
            row_axes[0].set_ylim(0, 100)
            row_axes[1].set_ylim(0, 100)
            row_axes[2].set_yscale("log")
            row_axes[2].minorticks_off()
            lo, hi = row_axes[2].get_ylim()
            marks = [v for v in (1, 3, 10, 30, 100, 300, 1000, 3000, 10000) if lo <= v <= hi]
            row_axes[2].set_yticks(marks, [str(v) for v in marks])
            row_axes[0].legend(fontsize=8, loc="upper left")
    return bool(pairs) and save_figure(path, fill, shape=(len(pairs), 3),
                                       figsize=(14, 3.8 * len(pairs)), dpi=80)


def latest(rows):
    """One row per run: its last evaluated milestone."""
    last = {}
    for r in rows:
        if r["run"] not in last or r["epoch"] > last[r["run"]]["epoch"]:
            last[r["run"]] = r
    return sorted(last.values(), key=lambda r: (r["arch"], r["run"]))


def format_frontier(rows):
    """Markdown: ``frontier(rows)``, one line per architecture and clean accuracy. -> str."""
    lines = ["| architecture | clean accuracy at least % | best FGSM in the paper's numerics % |",
             "| --- | --- | --- |"]
    for arch, pts in frontier(rows).items():
        lines += [f"| {ARCH_NAMES[arch]} | {c:.2f} | {f:.1f} |" for c, f in pts]
    return "\n".join(lines) + "\n"


def report(root, log):
    """The sweep's report of the run folders in ``root``: writes table.md, summary.md (each run's
    last milestone, the frontier), table.json and, with matplotlib, sweep.png, mechanism.png and
    controls.png; logs the table with ``log``. -> the rows of ``collect``."""
    rows = collect(root)
    table = format_table(rows)
    Path(root, "table.md").write_text(table)
    Path(root, "summary.md").write_text(format_table(latest(rows)) + "\n" + format_frontier(rows))
    write_json(Path(root, "table.json"), {"rows": rows, "frontier": frontier(rows)})
    if rows and draw(rows, Path(root, "sweep.png")):
        log(f"figure {Path(root, 'sweep.png')}")
    if rows and draw_mechanism(rows, Path(root, "mechanism.png")):
        log(f"figure {Path(root, 'mechanism.png')}")
    if rows and draw_controls(rows, Path(root, "controls.png")):
        log(f"figure {Path(root, 'controls.png')}")
    log("\n" + table)
    return rows
