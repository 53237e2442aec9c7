"""The regime, shipped: the two committed regime MLPs load with the ordinary checkpoint loader, are
what SHA256SUMS says, carry the recipe, seed and commit that trained them, and evaluate to their
record (results/regime.json)."""
import json
from pathlib import Path

import pytest

from experiments.beyond import evaluate
from experiments.lib.records import read_record
from nn.checkpoint import load_checkpoint

NAMES = evaluate.NAMES
# Tolerances against the record, in points of a percentage. The record was made on one machine; the
# float32 sums of another BLAS kernel or thread count round differently, and a test image whose
# margin or gradient sits at a float32 threshold may flip: a few images of 10,000 (0.01 points each)
# for the clean accuracy, more for an attack, which follows the gradient's float32 bits. On the
# machine that made the record the numbers come out identical.
TOLERANCE = {"clean_acc": 0.05, "fgsm_paper": 0.3, "fgsm_float32": 0.3, "fgsm_stable": 0.3,
             "apgd": 0.3, "zero_grad_paper": 0.5}


@pytest.mark.parametrize("name", NAMES)
def test_a_shipped_model_is_what_its_checksum_and_meta_say(name):
    path = evaluate.SHIPPED / f"{name}.npz"
    assert path.stat().st_size < 1 << 20  # under 1 MB: weights only
    evaluate.check_shipped(path)  # its SHA-256 is the one in SHA256SUMS
    sums = (evaluate.SHIPPED / "SHA256SUMS").read_text()
    assert f"{evaluate.sha256(path)}  {name}.npz" in sums
    model, meta = load_checkpoint(path)
    assert model.spec["name"] == name.split("-")[0] and meta["seed"] == 0
    assert (meta["recipe"]["arch"] == name.split("-")[0]
            and meta["recipe"]["training"] == "saturated")
    assert meta["commit"] and meta["command"] and meta["config"]["numerics"] == "paper"


def test_a_changed_file_is_refused(tmp_path, monkeypatch):
    """A shipped model whose bytes differ from SHA256SUMS is refused with a message naming the
    file."""
    from experiments.lib.cli import UsageError
    monkeypatch.setattr(evaluate, "SHIPPED", tmp_path)
    (tmp_path / "m.npz").write_bytes(b"weights")
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  m.npz\n")
    with pytest.raises(UsageError, match="m.npz: its SHA-256 differs"):
        evaluate.check_shipped(tmp_path / "m.npz")


@pytest.mark.slow
def test_the_shipped_models_evaluate_to_their_record(tmp_path, mnist_dir):
    record = read_record("regime")
    assert record is not None, ("results/regime.json is missing: "
                                "python -m experiments.publish --record regime ...")
    want = {r["model"]: r for r in record["numbers"]["rows"]}
    rows = evaluate.main(["--data-dir", str(mnist_dir), "--out", str(tmp_path / "run"),
                          "--n-test", str(record["numbers"]["eval"]["n_test"])])
    assert [r["model"] for r in rows] == list(want)
    for r in rows:
        for key, points in TOLERANCE.items():
            assert abs(100 * r[key] - 100 * want[r["model"]][key]) <= points, (
                r["model"], key, r[key])
    assert (json.loads((tmp_path / "run" / "config.json").read_text())["script"]
            == "experiments.beyond.evaluate")
    assert Path(tmp_path / "run" / "evaluation.json").exists()
