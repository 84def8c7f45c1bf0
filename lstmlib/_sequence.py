"""Pieces every recurrent sequence function shares: checking its inputs,
walking time in either direction, and summing the weight gradients of the
steps."""

import numpy as np

from ._validation import check_array, check_lengths, check_weights, step_mask


def check_step_inputs(x, states, weights, num_gates):
    """Validate one step's inputs; ``states`` maps names to (B, H) arrays."""
    D, H, dtype = check_weights(*weights, num_gates)
    x = check_array("x", x, (None, D), dtype)
    B = x.shape[0]
    for name, s in states.items():
        check_array(name, s, (B, H), dtype)
    return B, D, H


def check_sequence_inputs(x, states, weights, num_gates, lengths):
    """Validate a sequence's inputs; return ``(T, B, D, H, lengths, mask)``.

    ``mask`` is ``None`` without lengths, else a (T, B, 1) array of 0/1.
    """
    D, H, dtype = check_weights(*weights, num_gates)
    x = check_array("x", x, (None, None, D), dtype)
    T, B, _ = x.shape
    if T == 0 or B == 0:
        raise ValueError(f"x: expected at least one time step and one "
                         f"sequence, received shape {x.shape}")
    for name, s in states.items():
        check_array(name, s, (B, H), dtype)
    lengths = check_lengths(lengths, T, B)
    return T, B, D, H, lengths, step_mask(lengths, T, dtype)


def time_steps(T, reverse):
    """The order in which steps are computed (reversed for the backward
    direction of a bidirectional layer)."""
    return range(T - 1, -1, -1) if reverse else range(T)


def previous_state(states, s0, t, reverse):
    """The state step t started from: s0 for the first step computed, else
    the state the step before it (in the direction walked) left."""
    first = len(states) - 1 if reverse else 0
    if t == first:
        return s0
    return states[t + 1] if reverse else states[t - 1]


def previous_states(states, s0, reverse, out=None):
    """:func:`previous_state` for every step at once, (T, B, H), written
    into ``out`` when given."""
    prev = np.empty_like(states) if out is None else out
    if reverse:
        prev[-1] = s0
        prev[:-1] = states[1:]
    else:
        prev[0] = s0
        prev[1:] = states[:-1]
    return prev


class GradientSums:
    """The weight gradients of a sequence: the sums over its steps of each
    step's dw_ih, dw_hh, db_ih and db_hh (the weights are shared by all
    steps)."""

    def __init__(self, w_ih, w_hh, has_bias):
        self.dw_ih = np.zeros_like(w_ih)
        self.dw_hh = np.zeros_like(w_hh)
        self.db_ih = np.zeros(w_ih.shape[0], w_ih.dtype) if has_bias else None
        self.db_hh = np.zeros(w_hh.shape[0], w_hh.dtype) if has_bias else None

    def add(self, step_grads):
        self.dw_ih += step_grads.dw_ih
        self.dw_hh += step_grads.dw_hh
        if self.db_ih is not None:
            self.db_ih += step_grads.db_ih
            self.db_hh += step_grads.db_hh

    def totals(self):
        return self.dw_ih, self.dw_hh, self.db_ih, self.db_hh


def check_grad(name, value, shape, dtype):
    """Gradients flowing in are checked like inputs (None means zeros)."""
    if value is None:
        return np.zeros(shape, dtype)
    return check_array(name, value, shape, dtype)
