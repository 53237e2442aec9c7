"""Section 5, 6 and 8 analyses: kurtosis, RDMs, the Fisher metric and its pullback, Pearson VII."""
import numpy as np
import pytest

from analysis import fisher, kurtosis, rdm, stats
from nn import architectures
from nn import softmax
from nn.backend import to_device, to_host
from nn.gradcheck import numerical_gradient, rel_error
from nn.model import Sequential


def test_excess_kurtosis_of_gaussian_and_laplace():
    rng = np.random.default_rng(0)
    assert abs(stats.excess_kurtosis(rng.standard_normal(2_000_000))) < 0.02
    assert abs(stats.excess_kurtosis(rng.laplace(size=2_000_000)) - 3.0) < 0.1
    assert abs(stats.excess_kurtosis(rng.uniform(size=2_000_000)) + 1.2) < 0.01  # -6/5
    with pytest.raises(ValueError, match="constant"):
        stats.excess_kurtosis(np.ones(10))


def test_histogram_counts_everything():
    counts = stats.histogram(np.array([-5.0, 0.1, 0.2, 0.9, 7.0]), np.linspace(0, 1, 3))
    assert counts.tolist() == [3, 2]  # -5 clipped into the first bin, 7 into the last


def test_rdm_identical_representations_zero_and_symmetric(xp):
    rng = np.random.default_rng(1)
    r = to_device(rng.standard_normal((6, 5)), xp)
    D = to_host(rdm.rdm(xp.concatenate([r, r])))
    assert np.allclose(D, D.T) and (D >= 0).all() and (np.diag(D) == 0).all()
    # a row against its copy (Gram rounding)
    np.testing.assert_allclose(np.diag(D[:6, 6:]), 0, atol=1e-14)
    np.testing.assert_allclose(D[:6, 6:], D[:6, :6], atol=1e-12)
    brute = ((to_host(r)[:, None] - to_host(r)[None]) ** 2).mean(axis=2)
    np.testing.assert_allclose(D[:6, :6], brute, atol=1e-12)


def test_between_within_ratio():
    labels = np.array([0, 0, 1, 1])
    r = np.array([[0.0], [0.1], [1.0], [1.1]])
    D = rdm.rdm(r)
    # between: d(0,2), d(0,3), d(1,2), d(1,3) = 1, 1.21, 0.81, 1 (both ordered pairs, same mean);
    # within: 0.01
    assert rdm.between_within_ratio(D, labels) == pytest.approx(np.mean([1.0, 1.21, 0.81, 1.0])
                                                                / 0.01)
    idx = rdm.sample_per_class(np.repeat(np.arange(10), 5), 3)
    assert len(idx) == 30 and (np.repeat(np.arange(10), 5)[idx]
                               == np.repeat(np.arange(10), 3)).all()


def test_fisher_metric_is_the_cross_entropy_hessian(xp):
    rng = np.random.default_rng(2)
    z = to_device(rng.standard_normal((3, 10)), xp)
    y = to_device(rng.integers(0, 10, 3), xp)
    G = fisher.fisher_metric_logits(softmax.softmax(z))
    # the Hessian row by row: finite differences of the analytic gradient p - e_y
    for n in range(3):
        def grad_k(zn, k):
            zz = z.copy()
            zz[n] = zn
            return softmax.cross_entropy_backward(xp.ones(3),
                                                  softmax.cross_entropy_forward(zz, y)[1])[n, k]
        for k in range(10):
            num = numerical_gradient(lambda zn: grad_k(zn, k), z[n].copy())
            assert rel_error(G[n, k], num) < 1e-7
    A = fisher.fisher_sqrt(softmax.softmax(z))
    assert rel_error(A.transpose(0, 2, 1) @ A, G) < 1e-12


def _small(xp, act="sigmoid"):
    model = Sequential.init(architectures.mlp(act, hidden=12, input_shape=[1, 4, 4]), seed=0,
                            dtype=np.float64, xp=xp)
    x = to_device(np.random.default_rng(3).uniform(0, 1, (2, 1, 4, 4)), xp)
    return model, x


def test_kl_is_half_the_pullback_quadratic_form(xp):
    """KL(p(x) || p(x + s u)) = s^2 / 2 u^T G^in u + O(s^3): the ratio tends to 1 linearly in s."""
    model, x = _small(xp)
    p = softmax.softmax(model.logits(x))
    J = model.jacobian(x)
    u = to_device(np.random.default_rng(4).standard_normal((2, 16)), xp)
    quad = to_host(fisher.length_element(J, p, u)) ** 2
    dense = to_host((u[:, None, :] @ fisher.pullback_metric(J, p) @ u[:, :, None])[:, 0, 0])
    np.testing.assert_allclose(quad, dense, rtol=1e-10)
    errs = []
    for s in (1e-2, 1e-3):
        q = softmax.softmax(model.logits(x + s * u.reshape(x.shape)))
        kl = to_host(fisher.kl_divergence(p, q))
        errs.append(np.abs(kl / (0.5 * s * s * quad) - 1).max())
    assert errs[1] < 1e-2 and errs[1] < errs[0] / 5  # O(s) relative error


def test_low_rank_spectrum_equals_dense(xp):
    model, x = _small(xp, "relu")
    p = softmax.softmax(model.logits(x))
    J = model.jacobian(x)
    low = to_host(fisher.pullback_spectrum(J, p))
    dense = np.sort(np.linalg.eigvalsh(to_host(fisher.pullback_metric(J, p))),
                    axis=1)[:, ::-1][:, :10]
    np.testing.assert_allclose(low, dense, atol=1e-12 * dense.max())
    sv = to_host(fisher.singular_values(J))
    exact = np.linalg.svd(to_host(J), compute_uv=False)
    # the Gram route: ~sqrt(eps) floor
    np.testing.assert_allclose(sv, exact, atol=1e-7 * exact.max())
    big = exact > 1e-3 * exact.max()
    np.testing.assert_allclose(sv[big], exact[big], rtol=1e-10)


def test_path_geometry_shapes_and_length():
    model, x = _small(np)
    g = fisher.path_geometry(model, x[0], x[1], n=50)
    assert g["p"].shape == (50, 10) and g["dl"].shape == (50,) and g["sv"].shape == (50, 10)
    np.testing.assert_allclose(g["p"].sum(axis=1), 1)
    assert g["length"] == pytest.approx(np.trapezoid(g["dl"], g["t"]))
    np.testing.assert_allclose(g["p"][[0, -1]], to_host(softmax.softmax(model.logits(x))))


@pytest.mark.parametrize("gamma2", [0.0, 1.0, 3.0, 6.0])
def test_pearson7_sampler_variance_and_kurtosis(gamma2):
    rng = np.random.default_rng(5)
    w = kurtosis.sample_pearson7(gamma2, 4_000_000, rng)
    assert w.var() == pytest.approx(1.0, abs=0.01)
    # the sample kurtosis of heavy tails converges slowly: a looser band as gamma_2 grows
    assert stats.excess_kurtosis(w) == pytest.approx(gamma2, abs=0.05 + 0.25 * gamma2)
    with pytest.raises(ValueError):
        kurtosis.pearson7_nu(0.0)


def test_kurtosis_ratio_gaussian_baseline_and_rise():
    gauss, _ = kurtosis.ratio_statistics(lambda s, r: kurtosis.sample_pearson7(0.0, s, r), draws=20)
    assert gauss == pytest.approx(np.pi / (2 * np.sqrt(2)), rel=0.01)
    heavy, _ = kurtosis.ratio_statistics(lambda s, r: kurtosis.sample_pearson7(6.0, s, r), draws=20)
    assert heavy > 1.1 * gauss


def test_empirical_sampler_reproduces_the_distribution():
    rng = np.random.default_rng(6)
    w = rng.laplace(size=100_000)
    s = kurtosis.empirical_sampler(w)(1_000_000, rng)
    assert s.min() >= w.min() and s.max() <= w.max()
    assert stats.excess_kurtosis(s) == pytest.approx(3.0, abs=0.2)


def test_kl_divergence_takes_0_log_0_as_0():
    """KL([1, 0] || [.5, .5]) was NaN (0 log 0 computed as 0 * -inf), and KL(p || p) was NaN in 196
    of 200 rows of a confident float32 softmax, whose small probabilities round to 0. (Found in this
    project, no public report; 0 log 0 = 0 is the convention of scipy.special.rel_entr.)"""
    assert fisher.kl_divergence([[1, 0]], [[.5, .5]]).tolist() == [pytest.approx(np.log(2))]
    z = np.random.default_rng(0).standard_normal((200, 10)).astype(np.float32) * 40
    p = softmax.softmax(z)
    assert (p == 0).any(axis=1).sum() > 100
    np.testing.assert_array_equal(fisher.kl_divergence(p, p), np.zeros(200, np.float32))
    with np.errstate(divide="ignore"):
        assert fisher.kl_divergence(np.array([[0.5, 0.5]]), np.array([[1.0, 0.0]]))[0] == np.inf
