"""The published tables, rendered from records (``experiments.lib.records``), never typed.

A table lives in a Markdown file between two markers,

    <!-- rendered: NAME -->
    ...
    <!-- /rendered -->

and ``python -m experiments.publish`` rewrites what lies between them with ``TABLES[NAME]()``
(``experiments.lib.published`` and ``published_beyond``, one function per table); ``--check``
fails where a file's table differs from its rendering (a test runs the check).
"""
from __future__ import annotations

import re
from pathlib import Path

from experiments.lib.published import MAKES, PAPER, sources
from experiments.lib.published_beyond import BEYOND
from experiments.lib.records import ROOT

# where tables live
FILES = (ROOT / "README.md", ROOT / "RESULTS.md", ROOT / "experiments" / "README.md",
         ROOT / "docs" / "proofs.md")
# NAME -> the function that renders the table marked NAME; a record with no renderer yet renders
# as the line naming it and the command that makes it
TABLES = {**{name: (lambda n=name: sources(n) + "\n") for name in MAKES}, **PAPER, **BEYOND}
MARKER = re.compile(r"(<!-- rendered: ([a-z0-9_-]+) -->\n)(.*?)(<!-- /rendered -->)", re.S)
def render_text(text):
    """``text`` with every table between markers rendered anew. Raises KeyError for an unknown
    name."""
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
