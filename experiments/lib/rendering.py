"""The published tables, rendered from records (``experiments.lib.records``), never typed.

A table lives in a Markdown file between two markers,

    <!-- rendered: NAME -->
    ...
    <!-- /rendered -->

and ``python -m experiments.publish`` rewrites what lies between them with ``TABLES[NAME]()``;
``--check`` fails where a file's table differs from its rendering (a test runs the check). Under each
table a line names every record it was rendered from, with the command that made it and its commit.
A record not yet published renders as a line that says so and names the command that makes it.
"""
from __future__ import annotations

import re
from pathlib import Path

from experiments.lib import paper
from experiments.lib.records import ROOT, read_record
from experiments.lib.scripts import index_markdown
from experiments.lib.tables import format_table

FILES = (ROOT / "README.md", ROOT / "RESULTS.md", ROOT / "experiments" / "README.md")  # where tables live
MARKER = re.compile(r"(<!-- rendered: ([a-z0-9_-]+) -->\n)(.*?)(<!-- /rendered -->)", re.S)
# each record: the command that makes its run folder (``python -m experiments.publish --record NAME
# --from <that folder>`` then publishes it)
MAKES = {"table1": "python -m experiments.table1 --jobs 2",
         "controls": "python -m experiments.table1 --only control --jobs 2 --out runs/controls",
         "seeds": "python -m experiments.table1 --seeds 0 1 2 --controls --jobs 2 --out runs/seeds",
         "regime": "python -m experiments.beyond.evaluate",
         "weights": "python -m experiments.weights",
         "rdm": "python -m experiments.rdm",
         "fisher": "python -m experiments.fisher_path",
         "lbfgs": "python -m experiments.lbfgs_grid",
         "adam": "python -m experiments.adam_attack --max-iter 100000",
         "kurtosis": "python -m experiments.kurtosis_linear",
         "sweep": "python -m experiments.beyond.sweep --grid all --jobs 2",
         "logit_scale": "python -m experiments.beyond.logit_scale",
         "audit": "python -m experiments.beyond.audit",
         "verify": "python -m experiments.beyond.verify",
         "bench": "python -m experiments.tools.bench --out runs/bench"}


def pct(v, digits=2):
    """A share in [0, 1] as a percentage with ``digits`` decimals; '-' for None (not measured)."""
    return "-" if v is None else f"{100 * v:.{digits}f}"


def sources(*names):
    """The line under a table: each record's file, command, commit and date, or how to make it."""
    parts = []
    for name in names:
        r = read_record(name)
        if r is None:
            parts.append(f"`results/{name}.json`: not published yet (`{MAKES[name]}`, then "
                         f"`python -m experiments.publish --record {name} --from <its run folder>`)")
        else:
            commit = (r["commit"] or "no git")[:12] + ("-dirty" if (r["commit"] or "").endswith("-dirty") else "")
            parts.append(f"[`results/{name}.json`](results/{name}.json): `{r['command']}` at {commit}, "
                         f"{r['date'][:10]}, {r['machine']}")
    return "Records: " + "; ".join(parts) + "."


def _rows(name):
    """{model: row} of the record ``name`` in the paper's order (Table 1's columns, then its rows, each
    control after its saturated model); {} when it is not published."""
    r = read_record(name)
    if r is None:
        return {}
    order = [f"{a}-{t}" for a in paper.ARCHS for t in (*paper.TRAININGS, paper.CONTROL)]
    rows = sorted(r["numbers"]["rows"], key=lambda row: order.index(row["model"]) if row["model"] in order
                  else len(order))
    return {row["model"]: row for row in rows}


def headline():
    """README's table: for each of Table 1's nine models and the three controls, the paper's FGSM
    accuracy beside ours in the paper's numerics and along the true gradient (stable), the share of
    exactly-zero input gradients and the audit's worst case (%)."""
    main, controls, audit = _rows("table1"), _rows("controls"), _rows("audit")
    lines = ["| model | paper's FGSM | ours, paper's numerics | ours, stable gradients | exactly-zero gradients "
             "| audit's worst case |", "| --- | --- | --- | --- | --- | --- |"]
    for arch in paper.ARCHS:
        for training in (*paper.TRAININGS, paper.CONTROL):
            model = f"{arch}-{training}"
            row = (controls if training == paper.CONTROL else main).get(model)
            if training == paper.CONTROL and row is None:
                continue
            label = f"{paper.ARCH_NAMES[arch]} {'saturated recipe, no penalty' if training == paper.CONTROL else training}"
            theirs = f"{paper.TABLE1[model][1]:.2f}" if model in paper.TABLE1 else "-"
            worst = audit.get(model, {}).get("worst")
            cells = [pct(row["fgsm_paper"]), pct(row["fgsm_stable"]), pct(row["zero_grad_paper"], 1)] if row else \
                ["-", "-", "-"]
            bold = training == "saturated"
            cells = [f"**{c}**" if bold and c != "-" else c for c in cells]
            lines.append(f"| {label} | {theirs} | " + " | ".join(cells) + f" | {'-' if worst is None else f'{worst:.1f}'} |")
    return "\n".join(lines) + "\n\n" + sources("table1", "controls", "audit") + "\n"


def table1():
    """RESULTS' Table 1: clean / FGSM accuracy (%) of the nine models beside the paper's
    (``experiments.lib.tables.format_table``, as the main job prints it)."""
    r = read_record("table1")
    body = format_table(r["numbers"]["rows"]) if r else ""
    return body + "\n" + sources("table1") + "\n"


def controls():
    """Each saturated model beside its control (the same recipe without the penalty) and its vanilla
    twin: clean and FGSM accuracy (%) in the three numerics, and the exactly-zero gradient share."""
    rows = {**_rows("table1"), **_rows("controls")}
    lines = ["| model | clean | FGSM paper | FGSM float32 | FGSM stable | exactly-zero gradients |",
             "| --- | --- | --- | --- | --- | --- |"]
    for arch in paper.ARCHS:
        for training in ("vanilla", paper.CONTROL, "saturated"):
            r = rows.get(f"{arch}-{training}")
            if r is None:
                continue
            label = f"{paper.ARCH_NAMES[arch]} " + ("control (saturated recipe, no penalty)"
                                                   if training == paper.CONTROL else training)
            lines.append(f"| {label} | {pct(r['clean_acc'])} | {pct(r['fgsm_paper'])} | "
                         f"{pct(r['fgsm_float32'])} | {pct(r['fgsm_stable'])} | "
                         f"{pct(r['zero_grad_paper'], 1)} |")
    return "\n".join(lines) + "\n\n" + sources("table1", "controls") + "\n"


def timing():
    """The main job's cost: each model's training and evaluation seconds on one core (its BLAS
    thread), as its record keeps them, and their sum over the nine models."""
    rows = _rows("table1")
    if not rows:
        return sources("table1") + "\n"
    lines = ["| model | training (s) | evaluation (s) |", "| --- | --- | --- |"]
    for model, r in rows.items():
        lines.append(f"| {_label(model)} | {r['train_seconds']:,.0f} | "
                     f"{'-' if r.get('eval_seconds') is None else format(r['eval_seconds'], ',.0f')} |")
    train = sum(r["train_seconds"] for r in rows.values())
    evaluate = sum(r.get("eval_seconds") or 0 for r in rows.values())
    lines.append(f"| all nine | {train:,.0f} | {evaluate:,.0f} |")
    return "\n".join(lines) + "\n\n" + sources("table1") + "\n"


def regime():
    """The shipped regime MLPs, evaluated on the 10,000 test images: clean accuracy, FGSM in the three
    numerics, APGD, the share of exactly-zero input gradients and the median logit margin."""
    rows = _rows("regime")
    lines = ["| model | clean | FGSM paper | FGSM float32 | FGSM stable | APGD | exactly-zero gradients "
             "| median margin |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for model, r in rows.items():
        lines.append(f"| {_label(model)} | {pct(r['clean_acc'])} | {pct(r['fgsm_paper'])} | {pct(r['fgsm_float32'])} | "
                     f"{pct(r['fgsm_stable'])} | {pct(r['apgd'])} | {pct(r['zero_grad_paper'], 1)} | "
                     f"{r['margin_q'][2]:.1f} |")
    return "\n".join(lines) + "\n\n" + sources("regime") + "\n"


def audit():
    """The audit's table: per model the clean accuracy, the paper's FGSM, the strongest attack and the
    worst case over every attack (%), and the exactly-zero gradient share in the paper's numerics."""
    rows = _rows("audit")
    lines = ["| model | images | clean | FGSM (paper) | APGD-CE (paper) | APGD-DLR (stable) | Square | worst case "
             "| strongest |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for model, r in rows.items():
        a = r["accuracy"]
        cells = [a.get(k) for k in ("fgsm-ce-paper", "apgd-ce-paper", "apgd-dlr-stable", "square")]
        lines.append(f"| {_label(model)} | {r['n']} | {r['clean']:.1f} | " +
                     " | ".join("-" if c is None else f"{c:.1f}" for c in cells) +
                     f" | **{r['worst']:.1f}** | {r['strongest']} |")
    return "\n".join(lines) + "\n\n" + sources("audit") + "\n"


def _label(model):
    """'relu_mlp-saturated' -> 'ReLU MLP saturated'."""
    arch, _, training = model.partition("-")
    return f"{paper.ARCH_NAMES.get(arch, arch)} {training}"


def _numbers(name):
    r = read_record(name)
    return None if r is None else r["numbers"]


def weights():
    """Section 5: the excess kurtosis gamma_2 of each weight layer, the share of saturated units per
    layer over the test images and each layer's pre-activation range."""
    stats = _numbers("weights") or {}
    lines = ["| model | gamma_2 per weight layer | saturated units per layer | pre-activation range per layer |",
             "| --- | --- | --- | --- |"]
    for model, s in stats.items():
        k = ", ".join(f"{w['kurtosis']:.2f}" for w in s["weights"])
        sat = ", ".join("-" if h["saturated"] is None else f"{h['saturated']:.3f}" for h in s["preactivations"])
        rng = " / ".join(f"{h['min']:.3g}..{h['max']:.3g}" for h in s["preactivations"])
        lines.append(f"| {_label(model)} | {k} | {sat} | {rng} |")
    return ("\n".join(lines) + "\n\n" if stats else "") + sources("weights") + "\n"


def rdm():
    """Eq. 9: mean between-class over mean within-class dissimilarity, layer by layer."""
    r = _numbers("rdm") or {}
    lines = ["| model | between / within, layer 1 .. readout |", "| --- | --- |"]
    lines += [f"| {_label(m)} | {', '.join(f'{v:.2f}' for v in vs)} |" for m, vs in r.get("ratios", {}).items()]
    return ("\n".join(lines) + "\n\n" if r else "") + sources("rdm") + "\n"


def fisher():
    """Section 6: per class pair, the path length, the length element's median and peak, and the
    Jacobian singular values that inflate (above 10x their median along the path)."""
    r = _numbers("fisher") or {}
    lines = ["| model | path | length | median dl | peak dl | inflated singular values | largest singular value |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for model, paths in r.items():
        for pair, p in paths.items():
            lines.append(f"| {_label(model)} | {pair} | {p['length']:.3g} | {p['dl_median']:.3g} | {p['dl_max']:.3g} "
                         f"| {p['inflated_singular_values']} | {p['sv_max']:.3g} |")
    return ("\n".join(lines) + "\n\n" if r else "") + sources("fisher") + "\n"


def kurtosis():
    """Section 8: the linear read-out's robustness ratio against the excess kurtosis of Pearson VII
    weights (mean +- std over draws, relative to the Gaussian's), and of the networks' own layers."""
    r = _numbers("kurtosis")
    if r is None:
        return sources("kurtosis") + "\n"
    base = r["pearson7"][0]["mean"]
    lines = ["| weights | gamma_2 | R / R(Gaussian) |", "| --- | --- | --- |"]
    lines += [f"| Pearson VII | {p['gamma2']:g} | {p['mean'] / base:.3f} +- {p['std'] / base:.3f} |" for p in r["pearson7"]]
    lines += [f"| {_label(m)}, layer {w['layer']} | {w['kurtosis']:.2f} | {w['mean'] / base:.3f} +- {w['std'] / base:.3f} |"
              for m, layers in r["learned"].items() for w in layers]
    return "\n".join(lines) + f"\n\n(dimension {r['dim']}, {r['draws']} draws)\n\n" + sources("kurtosis") + "\n"


def targeted():
    """Section 7: per model and source kind (the least / most confident correct test image of each
    class), the (source, target) pairs that targeted L-BFGS-B and targeted Adam fool, of 90, with
    the median iterations over the pairs fooled."""
    runs = {name: {(r["model"], r["sources"]): r for r in (_numbers(name) or {"rows": []})["rows"]}
            for name in ("lbfgs", "adam")}
    keys = list(dict.fromkeys([*runs["lbfgs"], *runs["adam"]]))
    if not keys:
        return sources("lbfgs", "adam") + "\n"
    cell = lambda r: "-" if r is None else (  # noqa: E731
        f"{r['success']} / 90" + ("" if r["median_iterations"] is None
                                  else f" ({r['median_iterations']:g})"))
    lines = ["| model | sources | L-BFGS-B fooled (median iterations) | Adam fooled (median iterations) |",
             "| --- | --- | --- | --- |"]
    lines += [f"| {_label(m)} | {src} | {cell(runs['lbfgs'].get((m, src)))} | "
              f"{cell(runs['adam'].get((m, src)))} |" for m, src in keys]
    return "\n".join(lines) + "\n\n" + sources("lbfgs", "adam") + "\n"


def logit_scale():
    """The logit-scale probe: FGSM accuracy (%) as every logit is multiplied by c (no prediction
    changes), with the cross-entropy in float32 and the scale-free margin loss."""
    r = _numbers("logit_scale")
    if r is None:
        return sources("logit_scale") + "\n"
    lines = ["| model | c | clean | FGSM, cross-entropy (float32) | FGSM, margin (stable) | exactly-zero gradients |",
             "| --- | --- | --- | --- | --- | --- |"]
    for m in r["results"]:
        for s in m["scales"]:
            a = s["accuracy"]
            lines.append(f"| {_label(m['model'])} | {s['scale']:g} | {s['clean']:.1f} | {a['fgsm-ce-float32']:.1f} | "
                         f"{a['fgsm-margin-stable']:.1f} | {100 * s['zero_gradient_fraction']:.1f} |")
    return "\n".join(lines) + "\n\n" + sources("logit_scale") + "\n"


def index():
    """experiments/README.md's index of every script (``experiments.lib.scripts``)."""
    return index_markdown()


def pending(name):
    """A table whose renderer is not written yet: the line that names its record and command."""
    return lambda: sources(name) + "\n"


WRITTEN = {"headline": headline, "table1": table1, "regime": regime, "audit": audit, "index": index,
           "controls": controls, "timing": timing, "targeted": targeted, "weights": weights, "rdm": rdm, "fisher": fisher, "kurtosis": kurtosis, "logit_scale": logit_scale}
TABLES = {**{name: pending(name) for name in MAKES}, **WRITTEN}


def render_text(text):
    """``text`` with every table between markers rendered anew. Raises KeyError for an unknown name."""
    return MARKER.sub(lambda m: m.group(1) + TABLES[m.group(2)]() + m.group(4), text)


def shown(path):
    """A file's path as shown to a reader: relative to the repository where it lies inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def differing(files=FILES):
    """[(file, table name)] of every table whose text differs from its rendering."""
    out = []
    for path in files:
        text = Path(path).read_text()
        for m in MARKER.finditer(text):
            if m.group(3) != TABLES[m.group(2)]():
                out.append((shown(path), m.group(2)))
    return out
