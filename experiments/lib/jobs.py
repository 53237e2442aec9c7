"""Independent runs on existing engines: a standard-library process pool on one machine, and one
self-contained command per run for a scheduler on many (a SLURM job array, GNU parallel over ssh)
against a shared run folder.

Every run of Table 1 and of the sweep writes only its own checkpoint and result files, so runs need
no locks: two processes never train the same run when each is given its own command (``--list``).
Each pool worker gets one BLAS thread (``BLAS_THREADS``); ``blas`` names numpy's BLAS as this
process uses it (library, kernel, threads), which decides a run's speed and its float32 roundings.
"""
from __future__ import annotations

import multiprocessing
import os
import shlex
import signal
import sys
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path

from experiments.lib.scripts import module

# BLAS thread counts a worker process is started with: one each, so that N workers use N cores.
BLAS_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _stop(signum, frame):
    raise SystemExit(128 + signum)


def run_all(fn, tasks, jobs, cost=None):
    """[fn(task) for task in tasks], in order; with jobs > 1 in a pool of ``jobs`` processes
    (spawned, one BLAS thread each). fn must be a module-level function, tasks picklable. cost: one
    number per task, its expected time in any unit; the pool then starts the costliest tasks first
    (the longest processing time rule, Graham 1969: no task long enough to decide the wall time
    starts last). The first exception in any task is raised here as soon as the tasks already
    running (up to jobs + 1, the pool's queue) have finished, not after the whole list; the tasks
    not yet started are cancelled. Stopped itself (Ctrl-C, SIGTERM), the process stops its workers
    before it exits: none trains on, unseen, beside a rerun of the same command (each run resumes
    from its last checkpoint)."""
    if cost is not None and len(cost) != len(tasks):
        raise ValueError(f"{len(cost)} costs for {len(tasks)} tasks")
    if jobs <= 1 or len(tasks) <= 1:
        return [fn(t) for t in tasks]
    order = (sorted(range(len(tasks)), key=lambda i: -cost[i]) if cost is not None
             else range(len(tasks)))
    saved = {k: os.environ.get(k) for k in BLAS_THREADS}
    # inherited by the spawned workers at their start
    os.environ.update({k: "1" for k in BLAS_THREADS})
    # SIGTERM as SystemExit, like Ctrl-C's KeyboardInterrupt
    handler = signal.signal(signal.SIGTERM, _stop)
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = {i: pool.submit(fn, tasks[i]) for i in order}
        wait(futures.values(), return_when=FIRST_EXCEPTION)
        failed = [f for f in futures.values() if f.done() and not f.cancelled()
                  and f.exception() is not None]
        if failed:
            pool.shutdown(wait=True, cancel_futures=True)
            raise failed[0].exception()
        return [futures[i].result() for i in range(len(tasks))]
    except (KeyboardInterrupt, SystemExit):
        pool.shutdown(wait=False, cancel_futures=True)
        for child in multiprocessing.active_children():
            child.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        signal.signal(signal.SIGTERM, handler)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def command(script, *args, data_dir=None):
    """One self-contained shell command line for a scheduler: ``env <settings> <python> -m <module>
    <args>``, each argument quoted, that runs unchanged from any working folder, in a clean
    environment (SLURM, GNU parallel over ssh, another node sharing the file system).

    The settings: one BLAS thread (``BLAS_THREADS``, as the pool's workers; the thread count changes
    the float32 sums, so the model is the pool's bit for bit), OPENBLAS_CORETYPE when this process
    has it (the kernel changes them too), the MNIST folder this process would read (``nn.mnist``,
    from ``data_dir``, $SATNETS_MNIST_DIR or the cache; absolute), and PYTHONPATH at this checkout.
    The interpreter is this one (``sys.executable``). Folders among ``args`` must be given absolute.
    -> str."""
    from nn.mnist import FILES, find_file, search_dirs
    env = {k: "1" for k in BLAS_THREADS}
    if os.environ.get("OPENBLAS_CORETYPE"):
        env["OPENBLAS_CORETYPE"] = os.environ["OPENBLAS_CORETYPE"]
    found = [find_file(name, search_dirs(data_dir)) for name in FILES]
    if all(found) and len({f.parent for f in found}) == 1:
        env["SATNETS_MNIST_DIR"] = str(found[0].parent.resolve())
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return " ".join(["env", *(f"{k}={shlex.quote(v)}" for k, v in env.items()),
                     shlex.quote(sys.executable), "-m",
                     module(script), *map(shlex.quote, map(str, args))])


def blas():
    """numpy's BLAS as it runs, e.g. 'openblas 0.3.31.188.0 Haswell kernels, 2 threads,
    OPENBLAS_CORETYPE=Haswell'.

    Library, version, kernel and threads come from threadpoolctl (in the ``bench`` extra) when it is
    installed; OPENBLAS_CORETYPE is named whenever the environment sets it, because it holds
    OpenBLAS to that processor's kernels (some machines set it to dodge bugs of older OpenBLAS
    builds), and a kernel decides both the speed of every matrix product and its float32 roundings:
    the same training on another kernel gives other bits. -> str ('' when nothing is known).
    """
    parts = []
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = list
    libs = sorted((p for p in threadpool_info() if p.get("user_api") == "blas"),
                  key=lambda p: "numpy" not in p.get("filepath", ""))  # numpy's own library first
    if libs:
        p = libs[0]
        parts.append(f"{p['internal_api']} {p['version']} {p.get('architecture') or '?'} kernels, "
                     f"{p['num_threads']} threads")
    if os.environ.get("OPENBLAS_CORETYPE"):
        parts.append(f"OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']}")
    return ", ".join(parts)
