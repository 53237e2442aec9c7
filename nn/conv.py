"""Conv2D as a forward/backward pair (``nn.layers``' contract): stride 1, "same" zero padding,
through im2col. ``W``: (out_ch, in_ch, kh, kw), images NCHW.

im2col and col2im copy strided slices, one per kernel offset (25 for a 5x5 kernel), as Chainer's
``utils/conv.py`` does: the same code on numpy and cupy, no ``np.add.at`` and no writes through
duplicate indices.
"""
from __future__ import annotations

from .backend import array_module


def _same_pad(kh, kw):
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"'same' padding needs odd kernel sizes, got {kh}x{kw}")
    return (kh - 1) // 2, (kw - 1) // 2


def im2col(x, kh, kw):
    """Patches of a zero-padded image batch, one column per output pixel.

    x: (N, C, H, W)  ->  cols: (C*kh*kw, H*W*N), row index (c, i, j), column index (y, x, n):
    cols[(c, i, j), (y, x, n)] = x_pad[n, c, y + i, x + j].

    Filled with kh*kw strided-slice copies (as Chainer does), identical on numpy and cupy. The batch
    is the *innermost* axis so that every copied run is W*N values long rather than W: on the CPU
    this makes im2col and col2im several times faster.
    """
    xp = array_module(x)
    N, C, H, W = x.shape
    ph, pw = _same_pad(kh, kw)
    xt = xp.zeros((C, H + 2 * ph, W + 2 * pw, N), dtype=x.dtype)  # (C, Hp, Wp, N)
    xt[:, ph:ph + H, pw:pw + W, :] = x.transpose(1, 2, 3, 0)
    cols = xp.empty((C, kh, kw, H, W, N), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = xt[:, i:i + H, j:j + W, :]
    return cols.reshape(C * kh * kw, H * W * N)


def col2im(cols, x_shape, kh, kw):
    """Adjoint of ``im2col``: add every column entry back onto the pixel it was copied from.

    cols: (C*kh*kw, H*W*N)  ->  dx: (N, C, H, W) (a view of (C, H, W, N) memory).
    kh*kw strided ``+=`` on slices, no scatter.
    """
    xp = array_module(cols)
    N, C, H, W = x_shape
    ph, pw = _same_pad(kh, kw)
    cols = cols.reshape(C, kh, kw, H, W, N)
    dxt = xp.zeros((C, H + 2 * ph, W + 2 * pw, N), dtype=cols.dtype)  # (C, Hp, Wp, N)
    for i in range(kh):
        for j in range(kw):
            dxt[:, i:i + H, j:j + W, :] += cols[:, i, j]
    return dxt[:, ph:ph + H, pw:pw + W, :].transpose(3, 0, 1, 2)


def conv2d_forward(x, W, b):
    """h[n, o, y, x] = b[o] + sum_{c,i,j} W[o, c, i, j] x_pad[n, c, y+i, x+j]  (stride 1, 'same').

    x: (N, C, H, W)  W: (O, C, kh, kw)  b: (O,)  ->  h: (N, O, H, W).
    Computed as one matrix product with the im2col patches: h = W_mat @ cols. h is returned as a
    view of (O, H, W, N) memory; the layers after it keep that layout, so the next im2col and the
    backward's matrix products need no transposing copy.
    """
    N, C, H, Wd = x.shape
    O, Cw, kh, kw = W.shape
    if C != Cw:
        raise ValueError(f"conv2d: input has {C} channels, kernel expects {Cw}")
    cols = im2col(x, kh, kw)  # (C*kh*kw, H*W*N)
    h = W.reshape(O, -1) @ cols  # (O, H*W*N)
    h += b[:, None]
    return h.reshape(O, H, Wd, N).transpose(3, 0, 1, 2), (cols, x.shape, W)


def _channel_major(dh):
    """dh: (M, O, H, W) -> the matrix (O, H*W*M) (a free reshape when dh has our layout)."""
    return dh.transpose(1, 2, 3, 0).reshape(dh.shape[1], -1)


def conv2d_vjp(dh, cache):
    """dL/dx = col2im(W_mat^T dh_mat).   dh: (..., N, O, H, W) -> dx: (..., N, C, H, W).

    Leading cotangent axes are folded into the batch, M = prod(...) * N: a free reshape when dh is
    laid out (O, H, W, ..., N) in memory, as ``maxpool2d_backward`` and ReLU leave it; dx comes back
    laid out (C, H, W, ..., N).
    """
    _, x_shape, W = cache
    O, C, kh, kw = W.shape
    lead = dh.shape[:-4]
    dh = dh.reshape((-1,) + dh.shape[-3:])  # (M, O, H, W)
    M, _, H, Wd = dh.shape
    dcols = W.reshape(O, -1).T @ _channel_major(dh)  # (C*kh*kw, H*W*M)
    dx = col2im(dcols, (M, C, H, Wd), kh, kw)
    return dx.reshape(lead + tuple(x_shape))


def conv2d_param_grads(dh, cache):
    """dL/dW = dh_mat cols^T reshaped to (O, C, kh, kw);  dL/db = sum over n, y, x of dh."""
    cols, _, W = cache
    dh_mat = _channel_major(dh)  # (O, H*W*N)
    return {"W": (dh_mat @ cols.T).reshape(W.shape), "b": dh_mat.sum(axis=1)}


def conv2d_backward(dh, cache):
    """(dx, {'W': dW, 'b': db}) of ``conv2d_forward``."""
    return conv2d_vjp(dh, cache), conv2d_param_grads(dh, cache)
