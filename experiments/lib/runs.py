"""A run folder: what one command made, each alike. ``config.json`` (the command, the resolved
options, the recipes, satnets' version and git commit, the machine and numpy's BLAS), ``log.txt``
(what was printed, time-stamped), then the script's checkpoints and results, JSON written
atomically; any number in README.md or RESULTS.md traces to one folder and one command.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from experiments.lib.cli import check_checkpoints, check_run_folder
from experiments.lib.jobs import blas
from experiments.lib.scripts import module
from nn.backend import get_xp, resolve_device, retain_freed_memory
from nn.checkpoint import atomic_write


def write_json(path, obj):
    """Write obj as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, default=_jsonable).encode()
    atomic_write(path, lambda f: f.write(text))


def read_json(path, default):
    """The JSON at ``path``, or ``default`` when the file is missing or not (yet) complete JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def _jsonable(o):
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o)}")


class FileLog:
    """log(line): the line, time-stamped, on stdout and appended to a file (several processes may
    append to one file: each line is one write)."""

    def __init__(self, path):
        self._file = open(path, "a", buffering=1)

    def __call__(self, msg):
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        self._file.write(line + "\n")


def run_dir(script, args, default_dir=None):
    """The run folder of ``script``: --out, else runs/<script>, with -quick under --quick."""
    return Path(args.out or (default_dir or os.path.join("runs", script))
                + ("-quick" if args.quick else ""))


class Run:
    """A run folder with a log that goes both to stdout and to ``log.txt``, and its ``config.json``.

    Every option is checked before the folder is made (the folder ``--from`` names must exist, the
    models ``--models`` names must be known), so that a failed check leaves nothing behind; then
    ``config.json`` (``run_config``) is written before anything is trained or evaluated.
    ``recipes``: {name: recipe dict} of the models this run trains, when it trains any.
    ``retain``: on the CPU, keep freed memory for reuse (``nn.backend.retain_freed_memory``).
    Raises UsageError for an option that fails its check."""

    def __init__(self, script, args, default_dir=None, recipes=None, retain=True):
        if getattr(args, "checkpoints", None) is not None:
            if getattr(args, "models", None) is not None:
                check_checkpoints(args)
            else:
                check_run_folder(args.checkpoints)
        self.dir = run_dir(script, args, default_dir)
        self.device = resolve_device(args.device)
        self.xp = get_xp(self.device)
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.device == "cpu" and retain:
            retain_freed_memory()  # large numpy temporaries reused, not page-faulted in every step
        self.config = run_config(script, args, recipes)
        write_json(self.dir / "config.json", self.config)
        self.log = FileLog(self.dir / "log.txt")
        self.log(f"$ {self.config['command']}")
        self.log(f"run folder {self.dir}  device {self.device}  {hardware()}")

    def path(self, name):
        """The path of the file ``name`` inside the run folder."""
        return self.dir / name


def command_line(script, argv=None):
    """The command that made this run, as typed: ``python -m <module> <argv>``, arguments quoted."""
    argv = sys.argv[1:] if argv is None else argv
    return " ".join(["python", "-m", module(script), *map(shlex.quote, map(str, argv))])


def git_commit():
    """The repository's commit (40 hex digits), with ``-dirty`` when the code that runs (a tracked
    ``.py`` file or pyproject.toml) differs from it; documents (README, RESULTS, records) do not
    count. None outside a git checkout (an installed package) or without git."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no", "--", "*.py", "pyproject.toml"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty else "")


def package_version():
    """satnets' installed version (pyproject.toml), or None when it is run from a plain checkout."""
    try:
        return importlib.metadata.version("satnets")
    except importlib.metadata.PackageNotFoundError:
        return None


def run_config(script, args, recipes=None):
    """What every run folder's ``config.json`` holds: the command, the resolved options, the recipes
    it trains (or None), satnets' version, the git commit, the date, the machine and numpy's BLAS
    (whose kernel and thread count decide the float32 roundings). -> dict (JSON-able)."""
    options = {k: v for k, v in vars(args).items() if k not in ("debug",)}
    return {"script": module(script), "command": command_line(script), "options": options,
            "recipes": recipes, "version": package_version(), "commit": git_commit(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(),
            "numpy": np.__version__, "blas": blas()}


def machine():
    """The processor and its core count, e.g. 'AMD EPYC 7B13, 2 cores, x86_64'."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores, {platform.machine()}"


def hardware():
    """A one-line description of the machine (CPU count, numpy and its BLAS, GPU name if used)."""
    desc = (f"{platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}, "
            f"numpy {np.__version__}")
    kernel = blas()
    if kernel:
        desc += f" ({kernel})"
    try:
        import cupy
        desc += (f", cupy {cupy.__version__} on "
                 f"{cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}")
    except Exception:
        pass
    return desc
