"""The benchmark's PyTorch twins compute the same function as our models (else the comparison would
time two different things). Skipped without PyTorch (the optional ``bench`` extra)."""
import numpy as np
import pytest

from nn.architectures import cnn, mlp
from nn.model import Sequential

torch = pytest.importorskip("torch")
from experiments.lib import benchmarks, torch_twin  # noqa: E402

SPECS = {"sigmoid_mlp": mlp("sigmoid", hidden=7), "relu_mlp": mlp("relu", hidden=7),
         "cnn": cnn(channels=(2, 3), hidden=5)}


@pytest.mark.parametrize("arch", sorted(SPECS))
def test_twin_matches_logits_input_gradient_and_jacobian_in_float64(arch):
    model = Sequential.init(SPECS[arch], seed=3).astype(np.float64)
    rng = np.random.default_rng(0)
    x, y = rng.random((4, 1, 28, 28)), rng.integers(0, 10, 4)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    tw = torch_twin.freeze(torch_twin.twin(model))
    np.testing.assert_allclose(tw(tx).numpy(), model.logits(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(torch_twin.input_gradient(tw)(tx, ty).numpy(),
                               model.input_gradient(x, y), rtol=1e-10, atol=1e-13)
    J = torch_twin.jacobian(tw)(tx).numpy().reshape(4, 10, -1)
    np.testing.assert_allclose(J, model.jacobian(x), rtol=1e-10, atol=1e-13)


def test_twin_training_step_matches_ours_in_float64():
    """One Adam step from the same weights on the same batch gives the same weights on both
    sides."""
    from nn.optim import adam_init, adam_update
    model = Sequential.init(SPECS["cnn"], seed=1).astype(np.float64)
    rng = np.random.default_rng(1)
    x, y = rng.random((6, 1, 28, 28)), rng.integers(0, 10, 6)
    tw = torch_twin.twin(model)
    torch_twin.train_step(tw, torch.optim.Adam(tw.parameters(), lr=1e-3))(torch.from_numpy(x),
                                                                          torch.from_numpy(y))
    _, grads, _ = model.loss_and_grads(x, y)
    adam_update(model.params, grads, adam_init(model.params), lr=1e-3)
    theirs = [p.detach().numpy() for p in tw.parameters()]
    ours = [a for p in model.params for a in (p.get("W"), p.get("b")) if a is not None]
    assert len(theirs) == len(ours)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_comparison_prints_every_workload(capsys):
    rows = benchmarks.compare_with_torch(np, "cpu", quick=True)
    assert [r[0].split(":")[0] for r in rows] == ["sigmoid MLP"] * 3 + ["ReLU "
                                                                        "MLP"] * 3 + ["CNN"] * 3
    assert all(r[1] > 0 and r[2] > 0 for r in rows)
    out = capsys.readouterr().out
    assert out.count("x\n") == 9


def test_median_times_alternates():
    calls = []
    t = benchmarks.median_times({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4 and set(t) == {"a", "b"}
