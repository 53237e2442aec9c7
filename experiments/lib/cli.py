"""What every experiment script shares on its command line: the common options and their types,
the checks of what a user names (run folders, models), and ``cli``, which turns a user's mistake
into one line on stderr and exit status 2. The run folder itself is ``experiments.lib.runs``."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from experiments.lib import paper
from experiments.lib import plotting
from nn.validate import UserError, check_eps


def add_common_args(parser: argparse.ArgumentParser):
    """Options every script takes: --device, --data-dir, --out, --seed, --quick, --debug."""
    parser.add_argument("--device", choices=["cpu", "gpu"], default=None,
                        help="array backend (default: $SATNETS_DEVICE, else cpu)")
    parser.add_argument("--data-dir", default=None,
                        help="folder of the MNIST IDX files (default: $SATNETS_MNIST_DIR, "
                             "then the cache)")
    parser.add_argument("--out", default=None, help="run folder (default: runs/<script>[-quick])")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the initial weights, the shuffling and the attacks' random "
                             "starts (default 0)")
    parser.add_argument("--quick", action="store_true",
                        help="a small smoke-test preset (minutes on a CPU)")
    return add_debug_arg(parser)


def add_debug_arg(parser: argparse.ArgumentParser):
    """--debug, which ``cli`` reads: the traceback of an error instead of its one line."""
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error instead of one line")
    return parser


def add_pool_args(parser: argparse.ArgumentParser, trained, each):
    """--jobs (``trained``, e.g. "models", trained at a time in a process pool, one core each) and
    --list (one self-contained command per ``each``, nothing run), ``experiments.lib.jobs``."""
    parser.add_argument("--jobs", type=count, default=1,
                        help=f"{trained} trained at a time, one core each")
    parser.add_argument("--list", action="store_true",
                        help=f"print one command per {each}, run nothing")
    return parser


def summary(doc):
    """A script's description for --help: the first paragraph of its docstring, as one line."""
    return " ".join(doc.strip().split("\n\n")[0].split())


def parse(parser, argv=None, quick=None):
    """Parse the command line. ``--quick`` sets the defaults of the options named in ``quick``
    ({dest: value}) and of ``--from`` (Table 1's quick run folder, runs/table1-quick, so that the
    quick presets chain); an option given explicitly always wins over the preset. ``--eps`` (one
    radius or several), the L-inf radius of every script that has it, is checked here by
    ``nn.validate.check_eps``, the rule of the attacks: a radius above 1 is a ``UserError`` before
    anything runs."""
    pre, _ = parser.parse_known_args(argv)
    if pre.quick:
        defaults = dict(quick or {})
        if "checkpoints" in vars(pre):
            defaults["checkpoints"] = QUICK_TABLE1
        parser.set_defaults(**defaults)
    args = parser.parse_args(argv)
    eps = vars(args).get("eps")
    for e in eps if isinstance(eps, (list, tuple)) else [] if eps is None else [eps]:
        check_eps(e, "--eps")
    return args


def _whole_number(text, minimum):
    """``text`` as a whole number >= ``minimum``, else argparse's error naming what was wrong."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected at least {minimum}, got {value}")
    return value


def count(text):
    """argparse type: a whole number >= 1 (images, steps, restarts, queries, iterations, widths)."""
    return _whole_number(text, 1)


def whole(text):
    """argparse type: a whole number >= 0 (0: none)."""
    return _whole_number(text, 0)


def amount(text, positive=False):
    """argparse type: a finite number >= 0 (> 0 with ``positive``): eps, learning rates, scales."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not np.isfinite(value) or value < 0 or (positive and value == 0):
        raise argparse.ArgumentTypeError("expected a finite number "
                                         f"{'> 0' if positive else '>= 0'}, got {text}")
    return value


def positive(text):
    """argparse type: a finite number > 0."""
    return amount(text, positive=True)


def cli(main, argv=None):
    """Run a script's ``main(argv)`` as a command-line tool: an error in what the user gave (a
    ``nn.validate.UserError``: a missing or corrupt checkpoint or run folder, an unknown setting or
    model, no MNIST files) is printed as one line on stderr, exit status 2; ``--debug`` re-raises
    it with its traceback. Anything else is a bug and keeps its traceback."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        result = main(argv)
        if plotting.SKIPPED_FIGURES:
            print(f"figures skipped, matplotlib is not installed (pip install -e \".[plots]\"): "
                  f"{', '.join(map(str, plotting.SKIPPED_FIGURES))}", file=sys.stderr)
            plotting.SKIPPED_FIGURES.clear()
        return result
    # the output was piped into a reader that stopped (e.g. `--list | head`)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        raise SystemExit(1) from None
    except UserError as e:
        if "--debug" in argv:
            raise
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        prog = f"python -m {spec.name}" if spec else os.path.basename(sys.argv[0] or "satnets")
        print(f"{prog}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


@contextlib.contextmanager
def about(name):
    """Inside, an error the user caused (``UserError``) is raised again with ``name`` (the model
    being processed) in front of its message, so that a script looping over models says which one
    failed."""
    try:
        yield
    except UserError as e:
        raise UsageError(f"{name}: {e}") from e


# where table1 writes, without and with --quick
TABLE1, QUICK_TABLE1 = "runs/table1", "runs/table1-quick"


def add_checkpoint_args(parser, default_models):
    """--from (the folder of Table 1 checkpoints) and --models (their names, <arch>-<training>)."""
    parser.add_argument("--from", dest="checkpoints", default=TABLE1,
                        help="folder with the Table 1 checkpoints <arch>-<training>.npz (default "
                             f"{TABLE1}, with --quick {QUICK_TABLE1})")
    parser.add_argument("--models", nargs="*", default=list(default_models),
                        help=f"default: {' '.join(default_models)}")
    return parser


class UsageError(UserError, ValueError):
    """A command-line option or setting that does not exist or has the wrong type."""


MODEL_NAMES = paper.MODELS + paper.CONTROLS  # every model --models may name


def check_run_folder(folder, option="--from", made_by="python -m experiments.table1"):
    """The folder a script reads, or a UsageError saying which command makes it."""
    if not Path(folder).is_dir():
        raise UsageError(f"{option} {folder}: no such folder; run `{made_by}` first, "
                         f"or pass {option} the folder it wrote")
    return Path(folder)


def check_model_names(names, allowed=MODEL_NAMES):
    """--models: each one of Table 1's nine, <arch>-<training>, or a UsageError listing them."""
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise UsageError(f"--models: unknown model(s) {', '.join(unknown)}; expected some of "
                         f"{' '.join(allowed)}")
    return names


# options that do not change a script's numbers: where it writes, which models, how it reports. (The
# batch size stays out: PGD's random starts and Square's draws are made per batch.)
NOT_RESULTS = ("out", "models", "sources", "debug", "device")


def result_options(args):
    """The options of ``args`` that a result depends on (for resuming: an earlier result is reused
    only when these are equal)."""
    return {k: v for k, v in vars(args).items() if k not in NOT_RESULTS}


def checkpoint_stamp(folder, name):
    """[size, modification time in ns] of checkpoint <name>.npz in folder: a result records it, so
    that a retrained model is evaluated anew."""
    st = (Path(folder) / f"{name}.npz").stat()
    return [st.st_size, st.st_mtime_ns]


def resumable_rows(path, args):
    """{model: row} of an earlier result file at ``path`` (JSON with "options" and "rows", each row
    with its "model" and "checkpoint" stamp; the audit's, the bracket's) made with the same options
    (``result_options``) from the same checkpoints (``checkpoint_stamp``), else {}."""
    try:
        old = json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    if ({k: v for k, v in old.get("options", {}).items() if k not in NOT_RESULTS}
            != result_options(args)):
        return {}
    def unchanged(r):
        try:
            return r.get("checkpoint") == checkpoint_stamp(args.checkpoints, r["model"])
        except OSError:  # the checkpoint is gone
            return False
    return {r["model"]: r for r in old.get("rows", []) if unchanged(r)}


def check_checkpoints(args):
    """--from and --models: the folder exists, each model is known and has its checkpoint there;
    else a UsageError naming the command that makes what is missing."""
    check_model_names(args.models)
    check_run_folder(args.checkpoints)
    missing = [n for n in args.models if not (Path(args.checkpoints) / f"{n}.npz").exists()]
    if missing:
        raise UsageError(f"--from {args.checkpoints} has no checkpoint of {', '.join(missing)}; "
                         f"train it with `python -m experiments.table1 --only {' '.join(missing)} "
                         f"--out {args.checkpoints}`, or choose other --models")


def load_models(args, xp, dtype=None):
    """{name: model} for ``args.models`` from ``args.checkpoints``, optionally cast (float64 for
    analysis). Raises UsageError (``check_checkpoints``) before anything is read."""
    from nn.checkpoint import load_checkpoint
    check_checkpoints(args)
    models = {}
    for name in args.models:
        model, _ = load_checkpoint(Path(args.checkpoints) / f"{name}.npz", xp)
        models[name] = model.astype(dtype) if dtype is not None else model
    return models
