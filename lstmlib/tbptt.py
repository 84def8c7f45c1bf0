r"""Truncated backpropagation through time (Williams & Peng 1990).

A long sequence x (T, B, D) is read in consecutive chunks. Every ``k1``
steps the parameters are updated with the gradient of the loss of those
``k1`` steps, backpropagated at most ``k2`` steps into the past
(``k2 >= k1``; Williams and Peng call this BPTT(h; h') with h = k2 and
h' = k1). The state is *carried* from one chunk to the next, so the network
still sees everything that came before; only the gradient is cut:

.. math::

    \frac{\partial L_{[e-k_1, e)}}{\partial \theta} \approx
    \sum_{t = e - k_2}^{e - 1}
    \frac{\partial L_{[e-k_1, e)}}{\partial h_t}
    \frac{\partial^{+} h_t}{\partial \theta}

where e is the end of the chunk and :math:`\partial^+` the immediate
derivative of step t (the state h_{e-k_2} entering the window is treated as
a constant, like ``state.detach()`` in PyTorch). With ``k2 >= T`` nothing is
cut: the chunks' gradients add up to full BPTT's.

The model is anything with a recurrent layer ``model.rnn`` (``forward(x,
state) -> (out, state_n)`` and ``backward(d_out)``), a read-out
``model.head`` applied at every step, and ``params``/``grads`` dicts, such as
``SequenceModel(LSTM(...), Linear(...), readout="all")``.
:func:`tbptt_gradients` computes the same truncated gradients for one
recurrent cell driven directly (its forward and backward functions), given
the gradient of the loss with respect to every step's output.
"""

from collections import namedtuple

import numpy as np
from tqdm.auto import tqdm

from .optim import clip_grad_norm, global_norm
from .train import History

Window = namedtuple("Window", "start loss_start stop")
Window.__doc__ = """One update of truncated BPTT: the forward pass runs over
steps [start, stop), the loss counts steps [loss_start, stop) (the k1 new
steps) and the gradient stops at ``start`` (k2 steps back from ``stop``)."""

ChunkResult = namedtuple("ChunkResult", "window loss grads state")
ChunkResult.__doc__ = """What one chunk gives: its window, its loss, a copy
of the gradients (keys of ``model.grads``) and the state at ``window.stop``."""


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, received {value!r}")
    return int(value)


def tbptt_windows(T, k1, k2=None):
    """The windows of BPTT(k2; k1) over T steps: every k1 steps, the
    gradient goes back k2 steps from the current one (the last chunk may be
    shorter than k1; its window still spans k2 steps where there are that
    many). ``k2`` defaults to ``k1``; it must be at least k1."""
    T, k1 = _positive_int("T", T), _positive_int("k1", k1)
    k2 = k1 if k2 is None else _positive_int("k2", k2)
    if k2 < k1:
        raise ValueError(f"k2: expected at least k1={k1} (the gradient of a "
                         f"chunk's loss must reach the whole chunk), received {k2}")
    windows = []
    for loss_start in range(0, T, k1):
        stop = min(loss_start + k1, T)      # the last chunk may be shorter
        windows.append(Window(max(0, stop - k2), loss_start, stop))
    return windows


def _check_model(model):
    for attr in ("rnn", "head", "params", "grads"):
        if not hasattr(model, attr):
            raise ValueError(f"model: expected a model with .rnn, .head, .params "
                             f"and .grads (e.g. SequenceModel(..., readout='all')), "
                             f"received {type(model).__name__} without .{attr}")
    if getattr(model, "readout", "all") != "all":
        raise ValueError(f"model: expected readout='all' (a prediction at every "
                         f"step), received readout={model.readout!r}")


def _state_at(run, x, states, t):
    """The state entering step t, run forward (no gradient) from the latest
    stored border at or before t. ``states`` maps step -> state;
    ``run(x_part, state) -> state_n`` runs the recurrent layer."""
    border = max(s for s in states if s <= t)
    state = states[border]
    if border < t:
        state = run(x[border:t], state)
    return state


def _forget_before(states, step):
    """Drop the stored states older than the latest one at or before
    ``step``, the next window's start (windows' starts never decrease, so no
    later window needs them)."""
    keep = max(s for s in states if s <= step)
    for s in [s for s in states if s < keep]:
        del states[s]


def tbptt_chunks(model, x, y, loss_fn, k1, k2=None, state=None,
                 carry_state=True, step=None):
    """Run truncated BPTT over one long sequence, one chunk at a time.

    x (T, B, D) time-major (or token ids (T, B) for a model whose ``rnn``
    is an :class:`~lstmlib.model.EmbeddedRNN`); y the targets with leading shape (T, B);
    ``loss_fn(pred, y) -> (loss, dpred)`` on a chunk's k1 steps. ``state``
    is the state before step 0 (None: zeros). ``carry_state=False`` starts
    every window from zeros instead (independent windows, as when training
    on random crops). ``step(grads)``, if given, is called after each
    chunk's backward pass (the optimiser step), before the next chunk runs.
    Yields a :class:`ChunkResult` per chunk.
    """
    _check_model(model)
    x = np.asarray(x)
    if x.ndim not in (2, 3):
        raise ValueError(f"x: expected a (T, B, D) array, or (T, B) token ids for "
                         f"a model that embeds them (EmbeddedRNN), received "
                         f"shape {x.shape}")
    T = x.shape[0]
    if np.shape(y)[:2] != x.shape[:2]:
        raise ValueError(f"y: expected leading shape {x.shape[:2]} (T, B), "
                         f"received shape {np.shape(y)}")
    states = {0: state}                      # step -> state entering it
    windows = tbptt_windows(T, k1, k2)
    for i, win in enumerate(windows):
        start, loss_start, stop = win
        s0 = _state_at(lambda xs, s: model.rnn.forward(xs, s)[1], x, states,
                       start) if carry_state else None
        out, state_n = model.rnn.forward(x[start:stop], s0)
        pred = model.head.forward(out)
        k = loss_start - start               # steps before the loss counts
        loss, dpred_k = loss_fn(pred[k:], y[loss_start:stop])
        dpred = np.zeros_like(pred)
        dpred[k:] = dpred_k                  # older steps: no loss of their own
        d_out = model.head.backward(dpred)
        model.rnn.backward(d_out)            # no gradient into s0: the cut
        grads = {name: g.copy() for name, g in model.grads.items()}
        if step is not None:
            step(model.grads)
        states[stop] = state_n               # carried, as a constant
        if i + 1 < len(windows):
            _forget_before(states, windows[i + 1].start)
        yield ChunkResult(win, float(loss), grads, state_n)


def tbptt_gradients(cell, x, state, weights, d_out, k1, k2=None, **options):
    """The weight gradients of BPTT(k2; k1) through one recurrent cell,
    summed over the chunks, for a loss whose gradient with respect to every
    step's output is given.

    ``cell`` a :class:`~lstmlib.cells.CellType` (``lstmlib.rnn.CELL``,
    ``lstmlib.lstm.CELL``, ...); x (T, B, D); ``state`` the tuple of (B, H)
    arrays entering step 0 (``(h0,)``, or ``(h0, c0)`` for an LSTM);
    ``weights`` the cell's tuple ``(w_ih, w_hh, b_ih, b_hh)`` (biases may be
    None); d_out (T, B, H), dL/d out_t for a loss L = sum_t L_t that is a
    sum over steps; ``options`` the cell's keyword options
    (``nonlinearity="relu"`` for the RNN).

    Each window ``(start, loss_start, stop)`` of :func:`tbptt_windows` runs
    forward over [start, stop) from the state carried to ``start`` (a
    constant: no gradient leaves through it), backward with d_out on its
    loss steps [loss_start, stop) and zeros on the steps before (their loss
    belongs to earlier chunks), and its weight gradients are added to the
    total. With k2 >= T nothing is cut and the total is full BPTT's.
    Returns the summed gradients in the order of ``weights`` (None where a
    weight is None), in the inputs' dtype.
    """
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x: expected a (T, B, D) array, received shape {x.shape}")
    state = tuple(state)
    T, B = x.shape[:2]
    H = np.shape(state[0])[-1]
    if np.shape(d_out) != (T, B, H):
        raise ValueError(f"d_out: expected shape {(T, B, H)} (T, B, H), received "
                         f"shape {np.shape(d_out)}")

    def run(xs, s):
        return cell.forward(xs, s, weights, **options)[1]

    states = {0: state}                      # step -> state entering it
    windows = tbptt_windows(T, k1, k2)
    total = None
    for i, (start, loss_start, stop) in enumerate(windows):
        s0 = _state_at(run, x, states, start)    # carried, as a constant
        _, state_n, cache = cell.forward(x[start:stop], s0, weights, **options)
        d_win = np.zeros_like(d_out[start:stop])
        d_win[loss_start - start:] = d_out[loss_start:stop]  # the k1 new steps
        # no gradient into s0: the cut
        _, _, d_weights = cell.backward(d_win, (None,) * len(s0), cache)
        total = d_weights if total is None else tuple(
            None if t is None else t + d for t, d in zip(total, d_weights))
        states[stop] = state_n
        if i + 1 < len(windows):
            _forget_before(states, windows[i + 1].start)
    return tuple(total)


def train_tbptt(model, x, y, loss_fn, optimizer, k1, k2=None, epochs=1,
                clip=None, carry_state=True, progress=True, eval_fn=None):
    """Train on one long sequence with truncated BPTT for ``epochs`` passes.

    Each pass starts from a zero state and walks the sequence chunk by
    chunk (see :func:`tbptt_chunks`); the optimiser steps after every chunk.
    ``eval_fn(model) -> float`` runs after each pass. Returns a
    :class:`~lstmlib.train.History` (one entry per chunk).
    """
    epochs = _positive_int("epochs", epochs)
    hist = History()
    n_chunks = len(tbptt_windows(len(x), k1, k2))
    bar = tqdm(total=epochs * n_chunks, disable=not progress, desc="TBPTT",
               leave=False)
    norms = []

    def step(grads):
        norms.append(clip_grad_norm(grads, clip) if clip else global_norm(grads))
        optimizer.step(grads)

    n = 0
    for _ in range(epochs):
        for chunk in tbptt_chunks(model, x, y, loss_fn, k1, k2,
                                  carry_state=carry_state, step=step):
            hist.step.append(n)
            hist.loss.append(chunk.loss)
            hist.grad_norm.append(norms[-1])
            n += 1
            bar.update()
        if eval_fn is not None:
            hist.eval_step.append(n - 1)
            hist.metric.append(float(eval_fn(model)))
    bar.close()
    return hist
