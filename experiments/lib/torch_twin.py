"""PyTorch twins of satnets models, for the benchmark's side-by-side comparison
(``experiments.tools.bench``).

Optional: needs the ``bench`` extra (PyTorch); nothing in ``nn``, ``attacks`` or ``analysis``
imports it. A twin is the layer list of a spec built from ``torch.nn`` modules holding *copies of
the same weights*, so both sides compute the same function (``tests/test_torch_twin.py`` checks
logits, input gradients and Jacobians agree in float64). Our conventions map onto PyTorch's one to
one: Dense ``W`` is ``(n_out, n_in)`` like ``nn.Linear.weight``, Conv2D ``W`` is
``(out, in, kh, kw)`` like ``nn.Conv2d.weight``, images are NCHW and Flatten orders features
(C, H, W).

Each workload is what a PyTorch user would write: a training step is forward, mean cross-entropy,
``backward`` and ``torch.optim.Adam.step`` (PyTorch's default implementation for the device); the
input gradient is ``torch.autograd.grad`` of the summed cross-entropy; the Jacobian is
``torch.func.vmap(torch.func.jacrev(f))`` over the batch (parameters frozen for both).
"""
from __future__ import annotations

import numpy as np


def torch_available():
    """True when PyTorch imports."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def twin(model, device="cpu"):
    """A ``torch.nn.Sequential`` computing ``model`` (a satnets ``Sequential``) with copied weights.

    device: 'cpu' or 'cuda'. The dtype is the model's (float32 or float64).
    """
    import torch
    from torch import nn

    from nn.backend import to_host

    layers, shape = [], list(model.spec["input_shape"])
    for layer, p in zip(model.spec["layers"], model.params):
        t = layer["type"]
        if t == "dense":
            W = to_host(p["W"])
            m = nn.Linear(W.shape[1], W.shape[0])
        elif t == "conv2d":
            W = to_host(p["W"])
            m = nn.Conv2d(W.shape[1], W.shape[0], W.shape[2], padding=W.shape[2] // 2)
        else:
            m = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "flatten": nn.Flatten,
                 "maxpool2d": lambda: nn.MaxPool2d(2)}[t]()
        if t in ("dense", "conv2d"):
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(np.ascontiguousarray(W)))
                m.bias.copy_(torch.from_numpy(to_host(p["b"])))
        layers.append(m)
    dtype = {np.dtype(np.float32): torch.float32,
             np.dtype(np.float64): torch.float64}[np.dtype(model.dtype)]
    return nn.Sequential(*layers).to(device=device, dtype=dtype)


def train_step(module, optimizer):
    """-> step(x, y): one Adam step on the mean cross-entropy of the batch (x (N, 1, 28, 28), y
    (N,))."""
    import torch.nn.functional as F

    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(module(x), y)
        loss.backward()
        optimizer.step()
        return loss
    return step


def input_gradient(module):
    """-> grad(x, y): dC_n/dx_n for each example, C_n its cross-entropy (what FGSM uses)."""
    import torch
    import torch.nn.functional as F

    def grad(x, y):
        x = x.detach().requires_grad_(True)
        loss = F.cross_entropy(module(x), y, reduction="sum")
        return torch.autograd.grad(loss, x)[0]
    return grad


def jacobian(module):
    """-> jac(x): dlogits/dx per example, (N, 10, *input_shape), by vmap(jacrev)."""
    from torch.func import jacrev, vmap
    return vmap(jacrev(lambda xi: module(xi[None])[0]))


def freeze(module):
    """Parameters need no gradient (input gradients and Jacobians): PyTorch then skips dL/dW."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module
