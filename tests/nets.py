"""Small networks and data shared by the attack tests: untrained nets on 8x8 images that err on many
examples, so that every attack has something to fool and something to keep."""
import numpy as np

from nn import architectures
from nn.model import Sequential


def tiny_models():
    """A ReLU MLP, a sigmoid MLP whose units saturate (weights x 8: exactly-zero float32 gradients
    in the paper's mode) and a CNN, on 8x8 images. -> {arch: Sequential}."""
    relu = Sequential.init(architectures.mlp("relu", hidden=16, input_shape=[1, 8, 8]), seed=0)
    sig = Sequential.init(architectures.mlp("sigmoid", hidden=16, input_shape=[1, 8, 8]), seed=1)
    sig = Sequential(sig.spec, [{k: v * np.float32(8) for k, v in p.items()} for p in sig.params])
    cnn = Sequential.init(architectures.cnn(channels=(2, 3), hidden=8, input_shape=[1, 8, 8]),
                          seed=2)
    return {"relu_mlp": relu, "sigmoid_mlp": sig, "cnn": cnn}


def random_images(n=40, seed=0):
    """n uniform random 8x8 images in [0, 1] (float32) and random labels. -> (x, y)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, n)
