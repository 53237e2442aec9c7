"""The regime, shipped: the two committed regime MLPs load with the ordinary checkpoint loader, are
what SHA256SUMS says, carry the recipe, seed and commit that trained them, and evaluate to their
record (results/regime.json)."""
import json
from pathlib import Path

import pytest

from experiments.beyond import evaluate
from experiments.lib import shipped
from experiments.lib.records import read_record
from nn.checkpoint import load_checkpoint

NAMES = shipped.NAMES
# Tolerances against the record, in points of a percentage. The record was made on one machine; the
# float32 sums of another BLAS kernel or thread count round differently, and a test image whose
# margin or gradient sits at a float32 threshold may flip: a few images of 10,000 (0.01 points each)
# for the clean accuracy, more for an attack, which follows the gradient's float32 bits. On the
# machine that made the record the numbers come out identical.
TOLERANCE = {"clean_acc": 0.05, "fgsm_paper": 0.3, "fgsm_float32": 0.3, "fgsm_stable": 0.3,
             "apgd": 0.3, "zero_grad_paper": 0.5}


@pytest.mark.parametrize("name", NAMES)
def test_a_shipped_model_is_what_its_checksum_and_meta_say(name):
    path = shipped.SHIPPED / f"{name}.npz"
    assert path.stat().st_size < 1 << 20  # under 1 MB: weights only
    shipped.check_shipped(path)  # its SHA-256 is the one in SHA256SUMS
    sums = (shipped.SHIPPED / "SHA256SUMS").read_text()
    assert f"{shipped.sha256(path)}  {name}.npz" in sums
    model, meta = load_checkpoint(path)
    assert model.spec["name"] == name.split("-")[0] and meta["seed"] == 0
    assert (meta["recipe"]["arch"] == name.split("-")[0]
            and meta["recipe"]["training"] == "saturated")
    assert meta["commit"] and meta["command"] and meta["config"]["numerics"] == "paper"


def test_a_changed_file_is_refused(tmp_path):
    """A shipped model whose bytes differ from SHA256SUMS is refused with a message naming the
    file."""
    from experiments.lib.cli import UsageError
    (tmp_path / "m.npz").write_bytes(b"weights")
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  m.npz\n")
    with pytest.raises(UsageError, match="m.npz: its SHA-256 differs"):
        shipped.check_shipped(tmp_path / "m.npz")


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


def test_a_shipped_model_stands_in_for_its_recipe_and_seed_only(tmp_path):
    """``find_shipped``: the paper's recipe at seed 0 finds the shipped file; another seed, another
    recipe or a file whose bytes differ from SHA256SUMS does not stand in."""
    import shutil
    from experiments.lib.recipes import apply_set, table1_recipes
    from experiments.lib.store import find_shipped
    from experiments.lib.cli import UsageError
    recipes = table1_recipes()
    for name in NAMES:
        assert find_shipped(shipped.SHIPPED, recipes[name], 0) == shipped.SHIPPED / f"{name}.npz"
        assert find_shipped(shipped.SHIPPED, recipes[name], 1) is None
    quick = table1_recipes(quick=True)["relu_mlp-saturated"]
    assert find_shipped(shipped.SHIPPED, quick, 0) is None
    longer = apply_set(recipes, "relu_mlp-saturated.train.epochs=801")["relu_mlp-saturated"]
    assert find_shipped(shipped.SHIPPED, longer, 0) is None
    shutil.copy(shipped.SHIPPED / "SHA256SUMS", tmp_path)
    data = bytearray((shipped.SHIPPED / "relu_mlp-saturated.npz").read_bytes())
    data[-100] ^= 1  # one bit of the zip's tail (not its meta)
    (tmp_path / "relu_mlp-saturated.npz").write_bytes(bytes(data))
    with pytest.raises(UsageError, match="relu_mlp-saturated.npz: its SHA-256 differs"):
        find_shipped(tmp_path, recipes["relu_mlp-saturated"], 0)
