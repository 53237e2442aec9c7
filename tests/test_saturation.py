"""The prediction of exactly-zero float32 input gradients from depths and margins
(analysis.masking.saturation)."""
import numpy as np
import pytest

from analysis.masking import audit
from analysis.masking.saturation import LOG_SMALLEST_NORMAL, log_path_bound, margin_predicts_zero
from nn import architectures
from nn.model import Sequential


@pytest.mark.parametrize("numerics", ["paper", "float32"])
def test_path_bound_predicts_the_zero_gradients(numerics):
    """A sigmoid MLP scaled deep into saturation (|h| up to hundreds): the max-plus path bound says
    which examples' float32 gradients are exactly 0, where the margin alone misses those whose
    gradient dies in the hidden layers."""
    model = Sequential.init(architectures.mlp("sigmoid", hidden=32), seed=0)
    model = Sequential(model.spec, [{k: v * 400 for k, v in p.items()} for p in model.params])
    rng = np.random.default_rng(0)
    x, y = rng.random((400, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 400)
    zero = audit.zero_gradient(model, x, y, numerics=numerics)
    bound = log_path_bound(model, x, y, numerics=numerics)
    predicted = ~np.isfinite(bound)
    assert 0.03 < zero.mean() < 0.5  # a mix of zero and nonzero gradients
    assert (predicted == zero).mean() >= 0.99
    by_margin = margin_predicts_zero(model, x, y, numerics=numerics)
    # the margin explains a part only
    assert (by_margin <= zero).all() and by_margin.sum() < zero.sum()
    if numerics == "paper":
        assert (bound[~predicted] >= LOG_SMALLEST_NORMAL).all()


def test_path_bound_rejects_a_cnn():
    model = Sequential.init(architectures.cnn(channels=(2,), hidden=4, kernel=3,
                                              input_shape=[1, 8, 8]))
    with pytest.raises(ValueError, match="MLPs"):
        log_path_bound(model, np.zeros((1, 1, 8, 8), np.float32), np.zeros(1, int))
