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
# how each record is made, for a table whose record is missing
MAKES = {"table1": "python -m experiments.table1 --jobs 2",
         "controls": "python -m experiments.table1 --only control --jobs 2 --out runs/controls",
         "audit": "python -m experiments.beyond.audit",
         "regime": "python -m experiments.beyond.evaluate"}


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
            commit = (r["commit"] or "no git")[:12]
            parts.append(f"[`results/{name}.json`](results/{name}.json): `{r['command']}` at {commit}, "
                         f"{r['date'][:10]}, {r['machine']}")
    return "Records: " + "; ".join(parts) + "."


def _rows(name):
    r = read_record(name)
    return {} if r is None else {row["model"]: row for row in r["numbers"]["rows"]}


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


def regime():
    """The shipped regime MLPs, evaluated on the 10,000 test images: clean accuracy, FGSM in the three
    numerics, APGD, the share of exactly-zero input gradients and the median logit margin."""
    rows = _rows("regime")
    lines = ["| model | clean | FGSM paper | FGSM float32 | FGSM stable | APGD | exactly-zero gradients "
             "| median margin |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for model, r in rows.items():
        lines.append(f"| {model} | {pct(r['clean_acc'])} | {pct(r['fgsm_paper'])} | {pct(r['fgsm_float32'])} | "
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
        lines.append(f"| {model} | {r['n']} | {r['clean']:.1f} | " +
                     " | ".join("-" if c is None else f"{c:.1f}" for c in cells) +
                     f" | **{r['worst']:.1f}** | {r['strongest']} |")
    return "\n".join(lines) + "\n\n" + sources("audit") + "\n"


def index():
    """experiments/README.md's index of every script (``experiments.lib.scripts``)."""
    return index_markdown()


TABLES = {"headline": headline, "table1": table1, "regime": regime, "audit": audit, "index": index}


def render_text(text):
    """``text`` with every table between markers rendered anew. Raises KeyError for an unknown name."""
    return MARKER.sub(lambda m: m.group(1) + TABLES[m.group(2)]() + m.group(4), text)


def _shown(path):
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
                out.append((_shown(path), m.group(2)))
    return out
