"""MNIST from the standard IDX files, verified.

Where the files are looked for, in order (each file gzip-compressed ``NAME.gz`` or raw ``NAME``):

1. the ``data_dir`` argument (scripts: ``--data-dir``),
2. the environment variable ``SATNETS_MNIST_DIR``,
3. the per-user cache ``$XDG_CACHE_HOME/satnets/mnist`` (default ``~/.cache/satnets/mnist``);

a file found nowhere is downloaded into the cache from the public mirrors (or the comma-separated
URL prefixes in ``SATNETS_MNIST_MIRRORS``) and verified before it is kept.

Every file is checked: the IDX magic number and dimensions, its length (a truncated file is an
error, never a short array) and the SHA-256 of its *decompressed* content, which is the same for
every honest copy whatever its gzip settings.

The split: the 60,000 training images are divided into a validation set, the **first** 5,000
(TensorFlow's ``input_data`` convention, which the paper used), and a training set, the other
55,000. The 10,000 test images are never used for training or model selection.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import struct
import tempfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from .validate import UserError, check_number

ENV_DIR = "SATNETS_MNIST_DIR"
ENV_MIRRORS = "SATNETS_MNIST_MIRRORS"
MIRRORS = ("https://storage.googleapis.com/cvdf-datasets/mnist/",
           "https://ossci-datasets.s3.amazonaws.com/mnist/")
N_VALIDATION = 5000

# name -> (IDX magic, shape, SHA-256 of the decompressed file)
FILES = {
    "train-images-idx3-ubyte": (2051, (60000, 28, 28),
                                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train-labels-idx1-ubyte": (2049, (60000,),
                                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "t10k-images-idx3-ubyte": (2051, (10000, 28, 28),
                               "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "t10k-labels-idx1-ubyte": (2049, (10000,),
                               "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}


class MNISTError(UserError, RuntimeError):
    """MNIST files missing, corrupt or not downloadable. Every message has one shape, made here and
    nowhere else: ``<full path>: <what is wrong>. <what to do>``, e.g. ::

        /data/mnist/t10k-labels-idx1-ubyte.gz: file is truncated (10007 bytes, expected 10008).
        Delete it to download again (a verified copy goes into ~/.cache/satnets/mnist), or replace
        it with a good copy.

    (the arguments stay in ``args``, so the error survives pickling across processes)."""

    def __init__(self, path, problem, remedy):
        super().__init__(str(path), problem, remedy)
        self.path, self.problem, self.remedy = str(path), problem, remedy

    def __str__(self):
        return f"{self.path}: {self.problem}. {self.remedy}."


class _Corrupt(Exception):
    """What is wrong with the bytes of an MNIST file; the caller knows where they came from."""


def _delete_remedy() -> str:
    return (f"Delete it to download again (a verified copy goes into {cache_dir()}), "
            "or replace it with a good copy")


def _supply_remedy() -> str:
    return (f"Supply the four MNIST IDX files (gzip or raw) in a folder and pass it as "
            f"--data-dir, or set {ENV_DIR} to it, or copy them into {cache_dir()}")


def cache_dir() -> Path:
    """The per-user cache folder: $XDG_CACHE_HOME/satnets/mnist, default ~/.cache/satnets/mnist."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "satnets" / "mnist"


def search_dirs(data_dir=None) -> list[Path]:
    """The folders looked in, in order: data_dir, $SATNETS_MNIST_DIR, the cache."""
    dirs = [data_dir, os.environ.get(ENV_DIR), cache_dir()]
    return [Path(d) for d in dirs if d]


def _parse_idx(raw: bytes, name: str) -> np.ndarray:
    """The uint8 array of a decompressed IDX file, after checking its magic number and length
    (``_Corrupt`` says what is wrong).

    IDX: a big-endian int32 magic (0x0000 0x08 ndim; 2051 images, 2049 labels), ndim big-endian
    int32 sizes, then the prod(sizes) bytes of data.
    """
    magic, shape, _ = FILES[name]
    if len(raw) < 4:
        raise _Corrupt(f"file is truncated ({len(raw)} bytes, no IDX header)")
    got = struct.unpack(">i", raw[:4])[0]
    if got != magic:
        raise _Corrupt(f"wrong IDX magic number {got} (expected {magic}): not an MNIST file, "
                       f"or the wrong one under the name {name}")
    ndim = len(shape)
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise _Corrupt(f"file is truncated ({len(raw)} bytes, the header needs {header})")
    dims = struct.unpack(">" + "i" * ndim, raw[4:header])
    if tuple(dims) != shape:
        raise _Corrupt(f"IDX dimensions {dims}, expected {shape} for {name}")
    want = header + int(np.prod(shape))
    if len(raw) != want:
        kind = "truncated" if len(raw) < want else "longer than its header says"
        raise _Corrupt(f"file is {kind} ({len(raw)} bytes, expected {want})")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _decode(data: bytes, name: str) -> np.ndarray:
    """The verified uint8 array in ``data``, the bytes of MNIST file ``name`` (gzip or raw): its
    IDX structure and the SHA-256 of the decompressed content (``_Corrupt`` says what is wrong)."""
    if data[:2] == b"\x1f\x8b":  # gzip magic
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise _Corrupt(f"cannot be decompressed ({e}); the file is corrupt or truncated") from e
    arr = _parse_idx(data, name)
    sha = hashlib.sha256(data).hexdigest()
    if sha != FILES[name][2]:
        raise _Corrupt(f"SHA-256 checksum mismatch (got {sha}, expected {FILES[name][2]}); "
                       "the file is corrupt")
    return arr


def read_idx(path: Path, name: str) -> np.ndarray:
    """Read one IDX file (gzip or raw), check its structure and SHA-256 -> uint8 array."""
    path = Path(path).absolute()
    try:
        data = path.read_bytes()
    except OSError as e:
        raise MNISTError(path, f"cannot be read ({e.strerror or e})",
                         "Make it a readable file, or delete it to download again") from e
    try:
        return _decode(data, name)
    except _Corrupt as e:
        raise MNISTError(path, str(e), _delete_remedy()) from e


def find_file(name: str, dirs) -> Path | None:
    """The first existing NAME.gz or NAME in dirs, or None."""
    for d in dirs:
        for candidate in (d / (name + ".gz"), d / name):
            if candidate.is_file():
                return candidate
    return None


def download(name: str, dest: Path, mirrors, timeout: float = 30.0) -> Path:
    """Fetch NAME.gz from the first mirror that serves a verified copy; write it atomically into
    dest. -> the path written. Raises MNISTError with every mirror's failure."""
    final = Path(dest).absolute() / (name + ".gz")
    final.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for prefix in mirrors:
        url = prefix.rstrip("/") + "/" + name + ".gz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                data = r.read()
            _decode(data, name)  # verify before keeping it
            fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{name}.", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, final)
                return final
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except (OSError, http.client.HTTPException, _Corrupt) as e:
            errors.append(f"{url}: {e}")
    raise MNISTError(final, "could not be downloaded (" + "; ".join(errors) + ")", _supply_remedy())


def load_raw(data_dir=None, *, allow_download=True, mirrors=None) -> dict[str, np.ndarray]:
    """The four verified uint8 arrays, keyed by file name (see the module docstring for where
    they are looked for)."""
    dirs = search_dirs(data_dir)
    if mirrors is None:
        env = os.environ.get(ENV_MIRRORS)
        mirrors = [m for m in env.split(",") if m] if env else MIRRORS
    out = {}
    for name in FILES:
        path = find_file(name, dirs)
        if path is None:
            looked = ", ".join(str(d.absolute()) + ("" if d.is_dir() else " (no such folder)")
                               for d in dirs)
            if not allow_download:
                raise MNISTError(f"{name}(.gz)", f"not found in {looked}", _supply_remedy())
            try:
                path = download(name, cache_dir(), mirrors)
            except MNISTError as e:
                raise MNISTError(f"{name}(.gz)", f"not found in {looked}, and {e.path} {e.problem}",
                                 _supply_remedy()) from e
        out[name] = read_idx(path, name)
    return out


def to_float_images(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [0, 1] (pixel / 255)."""
    return (images.astype(np.float32) / 255.0)[:, None, :, :]


def load_mnist(data_dir=None, *, n_val=N_VALIDATION, allow_download=True, mirrors=None):
    """MNIST as float32 NCHW images in [0, 1] and int64 labels, split three ways.

    -> {"train": (x, y), "val": (x, y), "test": (x, y)} with 60000 - n_val, n_val and 10000
    examples; the validation set is the first n_val training images. n_val: a whole number in
    [0, 60000], else an InputError before any file is read.
    """
    n_train = FILES["train-labels-idx1-ubyte"][1][0]  # 60000
    n_val = int(check_number("n_val", n_val, integer=True, maximum=n_train))
    raw = load_raw(data_dir, allow_download=allow_download, mirrors=mirrors)
    x = to_float_images(raw["train-images-idx3-ubyte"])
    y = raw["train-labels-idx1-ubyte"].astype(np.int64)
    return {"train": (x[n_val:], y[n_val:]), "val": (x[:n_val], y[:n_val]),
            "test": (to_float_images(raw["t10k-images-idx3-ubyte"]),
                     raw["t10k-labels-idx1-ubyte"].astype(np.int64))}
