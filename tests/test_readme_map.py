"""The README's map from the paper to the code ("The paper in the code") must resolve.

Every row names the paper's equation, table or figure, the functions that compute it (backticked
dotted names, ``package.module.function`` or ``package.module.Class.method``, or a module), the
commands that run it (backticked ``python -m experiments.<name> ...``) and a link to its RESULTS.md
chapter. These tests check that every equation 1-13, table 1-2 and figure 1-8 has a row, that every
dotted name imports and resolves (``importlib`` + ``getattr``), that every ``experiments.<name>``
script exists (``importlib.util.find_spec``), and that every RESULTS.md link points at a heading.
A misspelled name, a renamed function or a moved script fails here.
"""
from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## The paper in the code"
COLUMNS = ("paper", "what", "function", "command", "RESULTS")
DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
COMMAND = re.compile(r"python -m (experiments(?:\.[A-Za-z_][A-Za-z0-9_]*)+)(\s|$)")
ITEM = re.compile(r"(Eqs?|Tables?|Figs?)\.? (\d+)(?:-(\d+))?")
WANTED = {"Eq": range(1, 14), "Table": range(1, 3), "Fig": range(1, 9)}


def _cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def map_rows(text):
    """The rows of the README's map table as dicts keyed by COLUMNS."""
    start = text.index(HEADING)
    end = text.find("\n## ", start + len(HEADING))
    lines = [l for l in text[start:end if end != -1 else None].splitlines() if l.startswith("|")]
    header, rows = _cells(lines[0]), lines[2:]  # lines[1] is the |---| separator
    assert tuple(header) == COLUMNS, f"the map's columns are {header}, expected {COLUMNS}"
    return [dict(zip(COLUMNS, _cells(r))) for r in rows]


def backticked(cell):
    return re.findall(r"`([^`]+)`", cell)


def resolve(name):
    """The object a dotted name names: the longest importable module prefix, then getattr for the
    rest. Raises ModuleNotFoundError or AttributeError when the name does not exist."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        module = ".".join(parts[:i])
        try:
            spec = importlib.util.find_spec(module)
        except ModuleNotFoundError:  # a parent package is missing
            spec = None
        if spec is None:
            continue
        obj = importlib.import_module(module)
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(f"no module in {name!r}")


def github_anchor(heading):
    """The anchor GitHub gives a markdown heading: lower case, punctuation dropped,
    spaces -> '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


README = (ROOT / "README.md").read_text()
ROWS = map_rows(README)
NAMES = sorted({n for r in ROWS for n in backticked(r["function"])})
COMMANDS = sorted({c for r in ROWS for c in backticked(r["command"])})


def test_every_equation_table_and_figure_has_a_row():
    found = {kind: set() for kind in WANTED}
    for row in ROWS:
        for kind, a, b in ITEM.findall(row["paper"]):
            found[kind.rstrip("s")].update(range(int(a), int(b or a) + 1))
    for kind, wanted in WANTED.items():
        missing = sorted(set(wanted) - found[kind])
        assert not missing, f"the README's map has no row for {kind}. {missing}"


def test_every_row_names_a_function_and_a_command():
    for row in ROWS:
        assert backticked(row["function"]), f"row {row['paper']!r} names no function"
        assert backticked(row["command"]), f"row {row['paper']!r} names no command"


@pytest.mark.parametrize("name", NAMES)
def test_function_resolves(name):
    assert DOTTED.match(name), f"{name!r} is not a dotted name like package.module.function"
    resolve(name)


@pytest.mark.parametrize("command", COMMANDS)
def test_command_module_exists(command):
    m = COMMAND.match(command)
    assert m, f"{command!r} is not `python -m experiments.<name> ...`"
    assert importlib.util.find_spec(m.group(1)) is not None, f"no module {m.group(1)}"


def test_results_links_point_at_headings():
    anchors = {github_anchor(l.lstrip("#")) for l in (ROOT / "RESULTS.md").read_text().splitlines()
               if l.startswith("#")}
    for row in ROWS:
        for target in re.findall(r"\]\(RESULTS\.md#([^)]+)\)", row["RESULTS"]):
            assert target in anchors, f"row {row['paper']!r}: RESULTS.md has no heading #{target}"


def test_a_misspelled_name_fails():
    """The check itself: a name one letter off does not resolve."""
    resolve("nn.penalty.saturating_penalty")
    with pytest.raises(AttributeError):
        resolve("nn.penalty.saturating_penaltyy")
    with pytest.raises((AttributeError, ModuleNotFoundError)):
        resolve("nn.penaltyy.saturating_penalty")
    assert COMMAND.match("python -m experiments.table1 --quick")
    assert importlib.util.find_spec("experiments.tabel1") is None


def test_the_library_snippet_runs_as_written(mnist_dir):
    """The README's "Use it as a library" block, pasted into a fresh interpreter at the repository
    root: it loads a shipped model, runs FGSM and APGD in two numerics and prints each robust
    accuracy, a count over N (500 images: at most three decimals, no float noise like
    0.040000000000000036)."""
    import os
    import subprocess
    import sys
    text = (ROOT / "README.md").read_text()
    start = text.index("```python", text.index("## Use it as a library")) + len("```python")
    code = text[start:text.index("```", start)]
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "SATNETS_MNIST_DIR": str(mnist_dir)})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [l.rsplit(" ", 1)[0] for l in lines] == ["FGSM paper", "APGD paper",
                                                    "FGSM stable", "APGD stable"]
    values = [l.rsplit(" ", 1)[1] for l in lines]
    assert all(0 <= float(v) <= 1 and len(v.split(".")[-1]) <= 3 for v in values), values
    # the masking: FGSM in the paper's numerics fails, APGD does not
    assert float(values[0]) > 0.5 > float(values[3])
