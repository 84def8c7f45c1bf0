r"""Initialisation of recurrent layers: orthogonal recurrent weights (Saxe
et al. 2014) and a positive forget-gate bias (Gers et al. 2000; Jozefowicz
et al. 2015).

An orthogonal W (W^T W = I) keeps the norm of what it multiplies, so at the
start of training h_{t-1} W_hh^T neither shrinks nor blows up along the
sequence. A forget-gate bias of 1 starts f_t = sigmoid(1) ~ 0.73 instead of
0.5: the cell state is kept for a few more steps before training has
learnt what to keep.
"""

import numpy as np


def orthogonal(shape, rng, gain=1.0, dtype=np.float64):
    """A (rows, cols) matrix with orthonormal rows or columns (whichever are
    fewer), drawn as ``torch.nn.init.orthogonal_`` draws it: the Q of a QR
    decomposition of a Gaussian matrix, signs fixed by R's diagonal so the
    distribution is uniform (Haar)."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng: expected a numpy.random.Generator, received "
                         f"{type(rng).__name__}")
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape: expected (rows, cols) with both positive, received {shape!r}")
    rows, cols = shape
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)                      # q: orthonormal columns
    q *= np.sign(np.diag(r))                    # uniform over rotations
    if rows < cols:
        q = q.T
    return (gain * q).astype(dtype)


def init_recurrent(layer, rng, forget_bias=1.0):
    """Re-initialise a recurrent layer's parameters in place.

    Every gate's block of ``weight_hh*`` (H, H) becomes orthogonal, the
    biases become 0, and for an LSTM the forget gate's ``bias_ih*`` rows
    (H:2H) become ``forget_bias``. ``layer`` is anything with ``params``
    named like PyTorch's (``lstmlib.LSTM``, ``GRU``, ``RNN``); the input
    weights keep their initialisation.
    """
    H = layer.hidden_size
    is_lstm = getattr(layer, "kind", "lstm") == "lstm"
    for name, p in layer.params.items():
        if name.startswith("weight_hh"):
            for g in range(p.shape[0] // H):
                p[g * H:(g + 1) * H] = orthogonal((H, H), rng, dtype=p.dtype)
        elif name.startswith("bias"):
            p[...] = 0
            if is_lstm and name.startswith("bias_ih"):
                p[H:2 * H] = forget_bias          # gate order i, f, g, o
