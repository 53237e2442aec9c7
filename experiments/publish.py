"""Publish: make a record from a run folder, and render every table of README.md, RESULTS.md and
experiments/README.md from the records under results/.

    python -m experiments.publish                    # render every table in place
    python -m experiments.publish --check            # exit 1 where a table differs
    python -m experiments.publish --record table1 --from runs/table1
                                                     # results/table1.json, then render

A record (``experiments.lib.records``) copies from the run folder's config.json the command that
made it, the commit, the date and the machine, and the numbers from its result file; the tables
(``experiments.lib.rendering``) are rendered from the records alone, between markers.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from experiments.lib.cli import UsageError, add_debug_arg, check_run_folder, cli, summary
from experiments.lib.records import make_record, write_record
from experiments.lib import rendering


def main(argv=None):
    """Make the record asked for (``--record`` with ``--from``), then render or ``--check`` the
    tables. -> the (file, table) pairs that differ (``--check``) or were rewritten."""
    parser = argparse.ArgumentParser(description=summary(__doc__))
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 where a table differs")
    parser.add_argument("--record", default=None,
                        help="name of the record to make (results/<name>.json)")
    parser.add_argument("--from", dest="folder", default=None,
                        help="the run folder the record is made from")
    add_debug_arg(parser)
    args = parser.parse_args(argv)
    if (args.record is None) != (args.folder is None):
        raise UsageError("--record and --from go together: the record's name and the run folder "
                         "it is made from")
    if args.record is not None:
        if not re.fullmatch(r"[a-z0-9_-]+", args.record):
            raise UsageError(f"--record {args.record}: a name of lower-case letters, digits, '-' "
                             "and '_'")
        check_run_folder(args.folder, "--from", "the command whose results you publish")
        print(write_record(make_record(args.record, args.folder)))
    stale = rendering.differing(rendering.FILES)
    if args.check:
        for name, table in stale:
            print(f"{name}: the table '{table}' differs from its rendering; run "
                  "`python -m experiments.publish`", file=sys.stderr)
        if stale:
            raise SystemExit(1)
        files = ", ".join(rendering.shown(p) for p in rendering.FILES)
        print(f"every table of {files} is its rendering")
        return stale
    for path in rendering.FILES:
        text = Path(path).read_text()
        new = rendering.render_text(text)
        if new != text:
            Path(path).write_text(new)
    for name, table in stale:
        print(f"rendered {name}: {table}")
    return stale


if __name__ == "__main__":
    cli(main)
