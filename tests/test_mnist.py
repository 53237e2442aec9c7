"""The MNIST loader: good files, corrupt files, missing files, and the download path."""
import contextlib
import functools
import gzip
import http.server
import pickle
import re
import shutil
import socket
import threading

import numpy as np
import pytest

from nn import mnist
from nn.validate import InputError

LABELS = "t10k-labels-idx1-ubyte"


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No $SATNETS_MNIST_DIR and an empty cache under tmp_path."""
    monkeypatch.delenv(mnist.ENV_DIR, raising=False)
    monkeypatch.delenv(mnist.ENV_MIRRORS, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def _raw_labels(mnist_dir):
    return gzip.decompress((mnist_dir / (LABELS + ".gz")).read_bytes())


DELETE = "Delete it to download again"  # the remedy for a file that is there but wrong
SUPPLY = "Supply the four MNIST IDX files"  # the remedy for files that are not there


def _one_shape(error, path, remedy):
    """Every MNIST message: ``<full path>: <what is wrong>. <what to do>.`` -> what is wrong."""
    msg = str(error)
    m = re.fullmatch(re.escape(f"{path}: ") + r"(.+)\. " + re.escape(remedy) + r"[^\n]*\.", msg)
    assert m, msg
    again = pickle.loads(pickle.dumps(error))  # survives a process pool
    assert type(again) is mnist.MNISTError and str(again) == msg
    return m.group(1)


def test_good_files(mnist_dir):
    data = mnist.load_mnist(mnist_dir, allow_download=False)
    (xtr, ytr), (xva, yva), (xte, yte) = data["train"], data["val"], data["test"]
    assert xtr.shape == (55000, 1, 28, 28) and xva.shape == (5000, 1, 28,
                                                             28) and xte.shape == (10000, 1, 28, 28)
    assert xtr.dtype == np.float32 and 0.0 == xte.min() and xte.max() == 1.0
    counts = np.bincount(np.concatenate([ytr, yva]), minlength=10)
    assert counts.tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(yte).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_raw_and_gzip_read_the_same(mnist_dir, tmp_path):
    (tmp_path / LABELS).write_bytes(_raw_labels(mnist_dir))
    np.testing.assert_array_equal(mnist.read_idx(tmp_path / LABELS, LABELS),
                                  mnist.read_idx(mnist_dir / (LABELS + ".gz"), LABELS))


@pytest.mark.parametrize("corrupt, message", [
    (lambda raw: raw[:-100], "truncated"),
    (lambda raw: raw[:6], "truncated"),
    (lambda raw: raw[:3] + b"\x03" + raw[4:], "wrong IDX magic number"),
    (lambda raw: raw[:8] + bytes([(raw[8] + 1) % 10]) + raw[9:], "checksum mismatch"),
    (lambda raw: raw + b"\x00", "longer than its header"),
])
@pytest.mark.parametrize("gz", [True, False])
def test_corrupt_files_are_errors(mnist_dir, tmp_path, monkeypatch, corrupt, message, gz):
    """Named by their full path (the folder too, also when given relative), with the remedy."""
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / (LABELS + (".gz" if gz else ""))
    raw = corrupt(_raw_labels(mnist_dir))
    path.write_bytes(gzip.compress(raw) if gz else raw)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(mnist.MNISTError) as e:
        mnist.read_idx(path.relative_to(tmp_path), LABELS)
    assert message in _one_shape(e.value, path, DELETE)


def test_truncated_gzip_stream_is_an_error(mnist_dir, tmp_path):
    path = tmp_path / (LABELS + ".gz")
    path.write_bytes((mnist_dir / (LABELS + ".gz")).read_bytes()[:-50])
    with pytest.raises(mnist.MNISTError) as e:
        mnist.read_idx(path, LABELS)
    assert "corrupt or truncated" in _one_shape(e.value, path, DELETE)


def test_unreadable_file_is_an_error(tmp_path):
    path = tmp_path / LABELS
    path.mkdir()  # a folder where the file should be: cannot be read
    with pytest.raises(mnist.MNISTError) as e:
        mnist.read_idx(path, LABELS)
    assert "cannot be read" in _one_shape(e.value, path,
                                          "Make it a readable file, or delete it to download again")


def test_missing_folder_is_named(isolated, monkeypatch):
    """A --data-dir that does not exist is named as such, beside every other folder looked in."""
    given = isolated / "typo"
    monkeypatch.setenv(mnist.ENV_DIR, str(isolated / "also-missing"))
    with pytest.raises(mnist.MNISTError) as e:
        mnist.load_raw(given, allow_download=False)
    problem = _one_shape(e.value, "train-images-idx3-ubyte(.gz)", SUPPLY)
    assert problem == (f"not found in {given} (no such folder), {isolated / 'also-missing'} "
                       f"(no such folder), {mnist.cache_dir()} (no such folder)")
    assert str(mnist.cache_dir()) in e.value.remedy and mnist.ENV_DIR in e.value.remedy


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_missing_files_without_network(isolated):
    mirror = f"http://127.0.0.1:{_closed_port()}/"  # nothing listens: like having no network
    with pytest.raises(mnist.MNISTError) as e:
        mnist.load_raw(isolated / "empty", mirrors=[mirror])
    msg = str(e.value)
    problem = _one_shape(e.value, "train-images-idx3-ubyte(.gz)", SUPPLY)
    assert problem.startswith(f"not found in {isolated / 'empty'} (no such folder), "
                              f"{mnist.cache_dir()} (no such folder), "
                              f"and {mnist.cache_dir() / 'train-images-idx3-ubyte.gz'} could not "
                              "be downloaded")
    assert mirror in msg and mnist.ENV_DIR in msg
    with pytest.raises(mnist.MNISTError, match="not found in"):
        mnist.load_raw(isolated / "empty", allow_download=False)


@contextlib.contextmanager
def serve(folder):
    """An HTTP server on 127.0.0.1 serving a folder; yields its URL, shuts down afterwards."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def local_mirror(mnist_dir):
    with serve(mnist_dir) as url:
        yield url


def test_download_from_local_server(isolated, local_mirror, monkeypatch, mnist_dir):
    bad = f"http://127.0.0.1:{_closed_port()}/"  # the first mirror fails, the second serves
    monkeypatch.setenv(mnist.ENV_MIRRORS, bad + "," + local_mirror)
    raw = mnist.load_raw()
    assert sorted(p.name for p in mnist.cache_dir().iterdir()) == sorted(n + ".gz"
                                                                         for n in mnist.FILES)
    np.testing.assert_array_equal(raw[LABELS], mnist.read_idx(mnist_dir / (LABELS + ".gz"), LABELS))
    # a second load reads the cache, with no server at all
    monkeypatch.setenv(mnist.ENV_MIRRORS, bad)
    assert mnist.load_raw()[LABELS].shape == (10000,)


def test_download_rejects_a_corrupt_mirror(isolated, tmp_path, mnist_dir):
    served = tmp_path / "served"
    shutil.copytree(mnist_dir, served)
    (served / (LABELS + ".gz")).write_bytes(gzip.compress(_raw_labels(mnist_dir)[:-1] + b"\x07"))
    with serve(served) as url:
        with pytest.raises(mnist.MNISTError) as e:
            mnist.download(LABELS, mnist.cache_dir(), [url])
    problem = _one_shape(e.value, mnist.cache_dir() / (LABELS + ".gz"), SUPPLY)
    assert problem.startswith(f"could not be downloaded ({url}{LABELS}.gz: "
                              "SHA-256 checksum mismatch")
    assert not any(mnist.cache_dir().iterdir())  # nothing unverified is kept


def test_n_val_outside_the_training_set_is_refused(mnist_dir, tmp_path):
    """``load_mnist(n_val=-5000)`` gave 5,000 training and 55,000 validation images (a negative
    slice) and ``n_val=60001`` an empty training set. n_val is a whole number in [0, 60000], checked
    before any file is read. (Found in this project, no public report.)"""
    for bad, message in ((-5000, "at least 0"), (60001, "at most 60000"), (True, "a number"),
                         (0.5, "a whole number"), ("5000", "a number")):
        with pytest.raises(InputError, match=f"^n_val must be {message}, got"):
            mnist.load_mnist(tmp_path / "nowhere", n_val=bad, allow_download=False)
    data = mnist.load_mnist(mnist_dir, n_val=60000.0, allow_download=False)
    assert len(data["val"][0]) == 60000 and len(data["train"][0]) == 0
