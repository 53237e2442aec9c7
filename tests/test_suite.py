"""The audit's attack suite and the eps sweep's attack (``analysis.masking.suite``): the suite's
names, APGD beside PGD, and the per-example worst case of the eps sweep's two APGD attacks."""
import numpy as np

from analysis.masking.suite import apgd_attacks, attack_suite, eps_sweep_attack, worst_of
from attacks import AttackResult
from attacks.apgd import APGD
from nn.backend import to_host


def test_the_suite_keeps_its_names_and_adds_apgd():
    """Every name of the suite before APGD is still there (old audit.json files stay readable beside
    new ones), and APGD-CE (paper), APGD-DLR (stable) and APGD-T (stable, AutoAttack's 9 targets x 1
    start) run on PGD's budget."""
    suite = attack_suite(0.1, pgd_steps=30, restarts=4, square_queries=10, seed=3)
    assert {"fgsm-ce-paper", "fgsm-ce-stable", "fgsm-margin-stable", "pgd-ce-paper",
            "pgd-ce-stable", "pgd-margin-stable", "square", "noise"} < set(suite)
    expected = {"apgd-ce-paper": ("ce", "paper", 4, 9), "apgd-dlr-stable": ("dlr", "stable", 4, 9),
                "apgd-dlr-targeted-stable": ("dlr-targeted", "stable", 1, 9)}
    for name, (loss, numerics, restarts, targets) in expected.items():
        a = suite[name]
        assert type(a) is APGD and (a.loss, a.numerics, a.restarts,
                                    a.targets) == (loss, numerics, restarts, targets)
        assert (a.eps, a.steps, a.seed) == (0.1, 30, 3) and name == f"apgd-{a.loss}-{a.numerics}"


def test_eps_sweep_attack_is_never_weaker_than_either_apgd(small_mnist_models, mnist_test):
    """The small trained MLPs, 200 test images: per example the eps sweep's attack fools the model
    wherever APGD-CE (paper) or APGD-DLR (stable) alone does, and only there; its x_adv is that
    attack's point (the model's verdict on it is the success)."""
    x, y = mnist_test[0][:200], mnist_test[1][:200]
    differ = 0
    for model in small_mnist_models[1].values():
        for eps in (0.05, 0.1):
            parts = [a(model, x, y)
                     for a in apgd_attacks(eps, steps=10, restarts=1, seed=0).values()]
            r = eps_sweep_attack(steps=10, seed=0, batch=200)(eps)(model, x, y)
            np.testing.assert_array_equal(r.success, parts[0].success | parts[1].success)
            np.testing.assert_array_equal(r.success, model.predict(r.x_adv) != y)
            differ += int((parts[0].success != parts[1].success).sum())
            np.testing.assert_array_equal(r.x_adv[parts[0].success],
                                          parts[0].x_adv[parts[0].success])
            rest = ~parts[0].success
            np.testing.assert_array_equal(r.x_adv[rest], parts[1].x_adv[rest])
            np.testing.assert_array_equal(r.linf,
                                          np.where(parts[0].success, parts[0].linf, parts[1].linf))
    assert differ > 0  # the test bites: each attack fools some example the other does not


def test_worst_of_takes_the_first_result_that_fools(xp):
    """Per example the first result whose point fools the model, else the last one's: x_adv,
    success, and the norms from the same result."""
    fooled = [xp.asarray([True, False, False, True]), xp.asarray([False, True, False, True])]
    rs = [AttackResult(xp.full((4, 2), k, np.float32), f, xp.full(4, 0.1 * k), xp.full(4, 1.0 * k))
          for k, f in enumerate(fooled)]
    w = worst_of(rs)
    assert to_host(w.success).tolist() == [True, True, False, True]
    assert to_host(w.x_adv[:, 0]).tolist() == [0, 1, 1, 0]
    assert to_host(w.linf).tolist() == [0, 0.1, 0.1, 0] and to_host(w.l2).tolist() == [0, 1, 1, 0]
    one = worst_of(rs[:1])
    assert all((to_host(a) == to_host(b)).all() for a, b in zip(
        (one.x_adv, one.success, one.linf, one.l2),
        (rs[0].x_adv, rs[0].success, rs[0].linf, rs[0].l2)))
