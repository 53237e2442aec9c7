"""The process pool of ``experiments.lib.jobs``: results in the tasks' order, the costliest tasks
first."""
import time

import pytest

from experiments.lib.jobs import run_all
from experiments.lib.recipes import table1_recipes


def _started(task):
    """A task that sleeps: -> (its name, when it started)."""
    name, seconds = task
    t = time.monotonic()
    time.sleep(seconds)
    return name, t


@pytest.mark.slow
def test_the_pool_starts_the_costliest_task_first_and_answers_in_order():
    """Two workers, three tasks, the last listed the costliest: it starts with the first wave, and
    the second listed waits for a free worker (listed order would start it last, deciding the wall
    time)."""
    tasks = [("a", 0.5), ("b", 0.5), ("long", 1.0)]
    results = run_all(_started, tasks, jobs=2, cost=[1, 1, 5])
    assert [name for name, _ in results] == ["a", "b", "long"]
    start = {name: t for name, t in results}
    assert start["long"] < start["b"] - 0.3
    with pytest.raises(ValueError, match="2 costs for 3 tasks"):
        run_all(_started, tasks, jobs=2, cost=[1, 1])


def test_the_saturated_cnn_is_table1s_costliest_run_and_vanilla_mlps_the_cheapest():
    """Recipe.cost orders Table 1 as the runs' measured times do (RESULTS, Performance)."""
    recipes = table1_recipes(False)
    order = sorted(recipes, key=lambda n: -recipes[n].cost())
    assert order[0] in ("cnn-saturated", "cnn-control") and order[2] in ("sigmoid_mlp-saturated",
                                                                         "sigmoid_mlp-control")
    assert set(order[-2:]) == {"sigmoid_mlp-vanilla", "relu_mlp-vanilla"}
    assert recipes["cnn-adversarial"].cost() == 2 * recipes["cnn-vanilla"].cost()


def _fail_or_sleep(task):
    """Raises for a negative task, sleeps for the others."""
    if task < 0:
        raise RuntimeError("task failed")
    time.sleep(task)
    return task


@pytest.mark.slow
def test_a_failing_task_is_raised_at_once_and_the_waiting_ones_are_cancelled():
    """The costliest task fails at once: the error reaches the caller without waiting for the long
    tasks still queued (listed first, cheapest), most of which never start."""
    tasks = [1.0] * 16 + [-1]
    t = time.monotonic()
    with pytest.raises(RuntimeError, match="task failed"):
        run_all(_fail_or_sleep, tasks, jobs=2, cost=[1] * 16 + [5])
    assert time.monotonic() - t < 6  # all 16 on 2 workers: 8 s; the ones already queued: about 2


def test_multiply_adds_count_each_weight_layers_forward_product():
    """Dense: fan_in * fan_out; a 5x5 'same' convolution: C_in * 25 * C_out * H * W per example."""
    from nn.architectures import build_spec
    from nn.spec import multiply_adds
    assert multiply_adds(build_spec("relu_mlp", hidden=1000, depth=2)) == [784 * 1000,
                                                                           1000 * 1000, 1000 * 10]
    cnn = multiply_adds(build_spec("cnn", channels=[32, 64], hidden=1024, kernel=5))
    assert cnn == [1 * 25 * 32 * 28 * 28, 32 * 25 * 64 * 14 * 14, 64 * 7 * 7 * 1024, 1024 * 10]
