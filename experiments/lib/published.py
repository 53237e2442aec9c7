"""The published tables, one function per table, each rendered from its records
(``experiments.lib.records``) alone; ``experiments.lib.rendering`` writes them between their
markers.

``PAPER[NAME]()`` is the Markdown of the table marked NAME (the paper's chapters, the headline and
the index; beyond the paper: ``experiments.lib.published_beyond``): the table, then a line naming
every record it was rendered from, with the command that made it and its commit. A table whose
record is not published yet renders as that line alone, naming the command that makes the record
(``MAKES``).
"""
from __future__ import annotations

from experiments.lib import paper
from experiments.lib.records import read_record
from experiments.lib.scripts import index_markdown
from experiments.lib.tables import format_table

# each record: the command that makes its run folder (``python -m experiments.publish --record NAME
# --from <that folder>`` then publishes it)
MAKES = {"table1": "python -m experiments.table1 --jobs 2",
         "controls": "python -m experiments.table1 --only control --jobs 2 --out runs/controls",
         "seeds": "python -m experiments.table1 --seeds 0 1 2 --only sigmoid_mlp-saturated "
                  "relu_mlp-saturated --jobs 2 --out runs/seeds",
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
         "verify": "python -m experiments.beyond.verify --models sigmoid_mlp-vanilla "
                   "sigmoid_mlp-adversarial sigmoid_mlp-saturated relu_mlp-vanilla",
         "verify_relu": "python -m experiments.beyond.verify --models relu_mlp-saturated "
                        "relu_mlp-adversarial --out runs/verify-relu",
         "verify_cnn": "python -m experiments.beyond.verify --models cnn-vanilla cnn-adversarial "
                       "cnn-saturated --eps 0.003 0.01 0.03 --n-test 100 --out "
                       "runs/verify-cnn-crown",
         "auto_lirpa": "python -m experiments.tools.auto_lirpa --from results/models --out "
                       "runs/auto-lirpa",
         "bench": "python -m experiments.tools.bench --out runs/bench",
         "bench_native": "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m "
                         "experiments.tools.bench --only-torch --out runs/bench-native"}


def pct(v, digits=2):
    """A share in [0, 1] as a percentage with ``digits`` decimals; '-' for None (not measured)."""
    return "-" if v is None else f"{100 * v:.{digits}f}"


def _markdown(header, rows):
    """A Markdown table: ``header`` (cells) and ``rows`` (lists of cells, str). -> str, no final
    newline."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def sources(*names):
    """The line under a table: each record's file, command, commit and date, or how to make it."""
    parts = []
    for name in names:
        r = read_record(name)
        if r is None:
            parts.append(f"`results/{name}.json`: not published yet (`{MAKES[name]}`, then "
                         f"`python -m experiments.publish --record {name} --from <its run "
                         "folder>`)")
        else:
            full = r["commit"] or "no git"
            commit = full[:12] + ("-dirty" if full.endswith("-dirty") else "")
            parts.append(f"[`results/{name}.json`](results/{name}.json): `{r['command']}` at "
                         f"{commit}, {r['date'][:10]}, {r['machine']}")
    return "Records: " + "; ".join(parts) + "."


def _rows(name):
    """{model: row} of the record ``name`` in the paper's order (Table 1's columns, then its rows,
    each control after its saturated model); {} when it is not published."""
    r = read_record(name)
    if r is None:
        return {}
    order = [f"{a}-{t}" for a in paper.ARCHS for t in (*paper.TRAININGS, paper.CONTROL)]
    rank = {model: i for i, model in enumerate(order)}
    rows = sorted(r["numbers"]["rows"], key=lambda row: rank.get(row["model"], len(order)))
    return {row["model"]: row for row in rows}


def headline():
    """README's table: for each of Table 1's nine models and the three controls, the paper's FGSM
    accuracy beside ours in the paper's numerics and along the true gradient (stable), the share of
    exactly-zero input gradients and the audit's worst case (%)."""
    main, controls, audit = _rows("table1"), _rows("controls"), _rows("audit")
    header = ["model", "paper's FGSM", "ours, paper's numerics", "ours, stable gradients",
              "exactly-zero gradients", "audit's worst case"]
    lines = []
    for arch in paper.ARCHS:
        for training in (*paper.TRAININGS, paper.CONTROL):
            model = f"{arch}-{training}"
            row = (controls if training == paper.CONTROL else main).get(model)
            if training == paper.CONTROL and row is None:
                continue
            kind = "saturated recipe, no penalty" if training == paper.CONTROL else training
            theirs = f"{paper.TABLE1[model][1]:.2f}" if model in paper.TABLE1 else "-"
            worst = audit.get(model, {}).get("worst")
            cells = ([pct(row["fgsm_paper"]), pct(row["fgsm_stable"]),
                      pct(row["zero_grad_paper"], 1)] if row else ["-", "-", "-"])
            bold = training == "saturated"
            cells = [f"**{c}**" if bold and c != "-" else c for c in cells]
            lines.append([f"{paper.ARCH_NAMES[arch]} {kind}", theirs, *cells,
                          "-" if worst is None else f"{worst:.1f}"])
    return _markdown(header, lines) + "\n\n" + sources("table1", "controls", "audit") + "\n"


def table1():
    """RESULTS' Table 1: clean / FGSM accuracy (%) of the nine models beside the paper's
    (``experiments.lib.tables.format_table``, as the main job prints it)."""
    r = read_record("table1")
    body = format_table(r["numbers"]["rows"]) if r else ""
    return body + "\n" + sources("table1") + "\n"


def seeds():
    """Table 1 over seeds: each model's mean +- sample standard deviation
    (``experiments.lib.tables.format_table``), then its FGSM accuracy (%) in the paper's numerics
    and along the true gradient (stable) seed by seed."""
    r = read_record("seeds")
    if r is None:
        return sources("seeds") + "\n"
    seeds = r["numbers"]["rows"][0]["seeds"]
    header = ["model", *(f"seed {s}: FGSM paper / stable" for s in seeds)]
    rows = [[_label(model), *(f"{pct(e['fgsm_paper'])} / {pct(e['fgsm_stable'])}"
                              for e in row["per_seed"])] for model, row in _rows("seeds").items()]
    return (format_table(r["numbers"]["rows"]) + "\n" + _markdown(header, rows) + "\n\n"
            + sources("seeds") + "\n")


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
        evaluation = r.get("eval_seconds")
        lines.append(f"| {_label(model)} | {r['train_seconds']:,.0f} | "
                     f"{'-' if evaluation is None else format(evaluation, ',.0f')} |")
    train = sum(r["train_seconds"] for r in rows.values())
    evaluate = sum(r.get("eval_seconds") or 0 for r in rows.values())
    lines.append(f"| all nine | {train:,.0f} | {evaluate:,.0f} |")
    return "\n".join(lines) + "\n\n" + sources("table1") + "\n"


def regime():
    """The shipped regime MLPs, evaluated on the 10,000 test images: clean accuracy, FGSM in the
    three numerics, APGD, the share of exactly-zero input gradients and the median logit margin."""
    header = ["model", "clean", "FGSM paper", "FGSM float32", "FGSM stable", "APGD",
              "exactly-zero gradients", "median margin"]
    rows = [[_label(model), pct(r["clean_acc"]), pct(r["fgsm_paper"]), pct(r["fgsm_float32"]),
             pct(r["fgsm_stable"]), pct(r["apgd"]), pct(r["zero_grad_paper"], 1),
             f"{r['margin_q'][2]:.1f}"] for model, r in _rows("regime").items()]
    return _markdown(header, rows) + "\n\n" + sources("regime") + "\n"


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
    header = ["model", "gamma_2 per weight layer", "saturated units per layer",
              "pre-activation range per layer"]
    rows = []
    for model, s in stats.items():
        h = s["preactivations"]
        rows.append([_label(model), ", ".join(f"{w['kurtosis']:.2f}" for w in s["weights"]),
                     ", ".join("-" if u["saturated"] is None else f"{u['saturated']:.3f}"
                               for u in h),
                     " / ".join(f"{u['min']:.3g}..{u['max']:.3g}" for u in h)])
    return (_markdown(header, rows) + "\n\n" if stats else "") + sources("weights") + "\n"


def rdm():
    """Eq. 9: mean between-class over mean within-class dissimilarity, layer by layer."""
    r = _numbers("rdm") or {}
    lines = ["| model | between / within, layer 1 .. readout |", "| --- | --- |"]
    lines += [f"| {_label(m)} | {', '.join(f'{v:.2f}' for v in vs)} |"
              for m, vs in r.get("ratios", {}).items()]
    return ("\n".join(lines) + "\n\n" if r else "") + sources("rdm") + "\n"


def fisher():
    """Section 6: per class pair, the path length, the length element's median and peak, and the
    Jacobian singular values that inflate (above 10x their median along the path)."""
    r = _numbers("fisher") or {}
    header = ["model", "path", "length", "median dl", "peak dl", "inflated singular values",
              "largest singular value"]
    rows = [[_label(model), pair, f"{p['length']:.3g}", f"{p['dl_median']:.3g}",
             f"{p['dl_max']:.3g}", str(p["inflated_singular_values"]), f"{p['sv_max']:.3g}"]
            for model, paths in r.items() for pair, p in paths.items()]
    return (_markdown(header, rows) + "\n\n" if r else "") + sources("fisher") + "\n"


def kurtosis():
    """Section 8: the linear read-out's robustness ratio against the excess kurtosis of Pearson VII
    weights (mean +- std over draws, relative to the Gaussian's), and of the networks' own
    layers."""
    r = _numbers("kurtosis")
    if r is None:
        return sources("kurtosis") + "\n"
    base = r["pearson7"][0]["mean"]
    lines = ["| weights | gamma_2 | R / R(Gaussian) |", "| --- | --- | --- |"]
    ratio = lambda d: f"{d['mean'] / base:.3f} +- {d['std'] / base:.3f}"  # noqa: E731
    lines += [f"| Pearson VII | {p['gamma2']:g} | {ratio(p)} |" for p in r["pearson7"]]
    lines += [f"| {_label(m)}, layer {w['layer']} | {w['kurtosis']:.2f} | {ratio(w)} |"
              for m, layers in r["learned"].items() for w in layers]
    return ("\n".join(lines) + f"\n\n(dimension {r['dim']}, {r['draws']} draws)\n\n"
            + sources("kurtosis") + "\n")


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
    header = ["model", "sources", "L-BFGS-B fooled (median iterations)",
              "Adam fooled (median iterations)"]
    rows = [[_label(m), src, cell(runs["lbfgs"].get((m, src))), cell(runs["adam"].get((m, src)))]
            for m, src in keys]
    return _markdown(header, rows) + "\n\n" + sources("lbfgs", "adam") + "\n"


def index():
    """experiments/README.md's index of every script (``experiments.lib.scripts``)."""
    return index_markdown()


PAPER = {"headline": headline, "table1": table1, "seeds": seeds, "regime": regime,
         "index": index, "controls": controls, "timing": timing, "targeted": targeted,
         "weights": weights, "rdm": rdm, "fisher": fisher, "kurtosis": kurtosis}
