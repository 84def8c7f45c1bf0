"""The checks of 06_gru."""

import numpy as np

from ._engine import (_Case, _check_returns, _draw_inputs, _gate_hint,
                      GRU_GATES, _PARTS, _randn, _rng, _sig, _spec_part,
                      _swapped_gates)

_GRU_TERM_HINTS = {
    "dx": "dx = dgx @ w_ih, with dgx the (B, 3H) gradient of the input "
          "projections.",
    "dh_prev": "dh_prev = dh * z + dgh @ w_hh: h_prev reaches h directly "
               "(through z) and through the hidden projections.",
    "dw_ih": "dw_ih = dgx.T @ x.",
    "dw_hh": "dw_hh = dgh.T @ h_prev; in the n block dgh = dn_pre * r.",
    "db_ih": "db_ih = dgx.sum(axis=0).",
    "db_hh": "db_hh = dgh.sum(axis=0): its n block is scaled by r.",
}


def _gru_step_np(x, h, w_ih, w_hh, b_ih, b_hh, reset_before=False,
                 z_swap=False, b_hn_outside=False, n_act="tanh"):
    H = h.shape[1]
    gx = x @ w_ih.T
    gh = h @ w_hh.T
    if b_ih is not None:
        gx = gx + b_ih
        gh_b = gh + b_hh
    else:
        gh_b = gh
    r = _sig(gx[:, :H] + gh_b[:, :H])
    z = _sig(gx[:, H:2 * H] + gh_b[:, H:2 * H])
    if reset_before:
        hn = (r * h) @ w_hh[2 * H:].T
        if b_hh is not None:
            hn = hn + b_hh[2 * H:]
        pre = gx[:, 2 * H:] + hn
    elif b_hn_outside and b_hh is not None:
        pre = gx[:, 2 * H:] + r * gh[:, 2 * H:] + b_hh[2 * H:]
    else:
        pre = gx[:, 2 * H:] + r * gh_b[:, 2 * H:]
    n = np.tanh(pre) if n_act == "tanh" else _sig(pre)
    if z_swap:
        return (z * n + (1 - z) * h,)
    return ((1 - z) * n + z * h,)


def _gru_step_bwd_np(dh, cache, mode):
    x, h_prev, r, z, n, hn, w_ih, w_hh, has_bias = cache
    H = r.shape[1]
    dn = dh * (1 - z)
    dz = dh * (n - h_prev) if mode == "dz_sign" else dh * (h_prev - n)
    dan = dn * (1 - n * n)
    dr = dan * hn
    dgx = np.concatenate([dr * r * (1 - r), dz * z * (1 - z), dan], axis=1)
    dgh = dgx.copy()
    if mode != "n_not_scaled":
        dgh[:, 2 * H:] *= r
    dh_prev = dgh @ w_hh if mode == "no_direct" else dh * z + dgh @ w_hh
    db_ih = dgx.sum(axis=0) if has_bias else None
    db_hh = dgh.sum(axis=0) if has_bias else None
    return (dgx @ w_ih, dh_prev, dgx.T @ x, dgh.T @ h_prev, db_ih, db_hh)


def prepare():
    """Draw the cases of every part and compute their expected values."""
    from lstmlib import gru
    step = gru.gru_step_forward
    step_b = gru.gru_step_backward
    names = ("gru_step_forward", "gru_step_backward", "gru_forward",
             "gru_backward")

    def inputs(seed, B, D, H, bias, dtype):
        return _draw_inputs(_rng(1000 + seed), 3, (B, D), H, bias, dtype)

    def fwd_case(name, seed, B, D, H, bias, dtype):
        args = inputs(seed, B, D, H, bias, dtype)
        x, h, w_ih, w_hh, b_ih, b_hh = args
        hh, _ = step(*args)
        hy = [
            ("the reset gate is applied before the matmul (W_hn (r * h)), as "
             "in some textbooks; PyTorch applies it after: r * (W_hn h + b_hn).",
             _gru_step_np(*args, reset_before=True)),
            ("z and 1 - z are swapped: h = (1 - z) * n + z * h_prev.",
             _gru_step_np(*args, z_swap=True)),
            ("wrong gate activation: the candidate n uses sigmoid, it must use "
             "tanh.", _gru_step_np(*args, n_act="sigmoid")),
        ]
        if b_ih is not None:
            hy.append(("b_hn is added outside the reset gate: it belongs "
                       "inside, n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).",
                       _gru_step_np(*args, b_hn_outside=True)))
            hy.append(("the biases are missing (add b_ih and b_hh).",
                       (step(x, h, w_ih, w_hh, None, None)[0],)))
            hy.append(("b_hh is missing: PyTorch's GRU has two biases.",
                       (step(x, h, w_ih, w_hh, b_ih, b_hh * 0)[0],)))
        for p, q, text in ((0, 1, "r and z"), (0, 2, "r and n"), (1, 2, "z and n")):
            hy.append((f"gates {text} are swapped: the blocks are in the order "
                       f"r, z, n (rows 0:H, H:2H, 2H:3H).",
                       (step(x, h, *_swapped_gates(args[2:], H, 3, p, q))[0],)))
        return _Case(name, args, None, (hh,), hy)

    def bwd_case(name, seed, B, D, H, bias, dtype):
        args = inputs(seed + 10, B, D, H, bias, dtype)
        _, cache = step(*args)
        dh = _randn(_rng(1100 + seed), (B, H), dtype)
        g = step_b(dh, cache)
        hy = [
            ("dh_prev misses the direct path through z: h = (1 - z) * n + z * "
             "h_prev adds dh * z.", _gru_step_bwd_np(dh, cache, "no_direct")),
            ("the sign of dz: h = (1 - z) * n + z * h_prev gives dz = dh * "
             "(h_prev - n).", _gru_step_bwd_np(dh, cache, "dz_sign")),
            ("in the hidden projection's n block the gradient is scaled by r "
             "(n = tanh(.. + r * (W_hn h + b_hn))).",
             _gru_step_bwd_np(dh, cache, "n_not_scaled")),
        ]
        return _Case(name, (dh, cache), None, tuple(g), hy)

    _PARTS["gru_step_forward"] = _spec_part(
        "Part A (gru_step_forward)", names, fwd_case)
    _PARTS["gru_step_backward"] = _spec_part(
        "Part B (gru_step_backward)", names, bwd_case)


def gru_step_forward(fn, which="visible"):
    """Part A of 06_gru: ``h, cache = fn(x, h_prev, w_ih, w_hh, b_ih, b_hh)``."""
    _check_returns("gru_step_forward", fn, which, ["h"], ungraded=["cache"])


_GRU_STEP_TERMS = ["dx", "dh_prev", "dw_ih", "dw_hh", "db_ih", "db_hh"]


def gru_step_backward(fn, which="visible"):
    """Part B of 06_gru: ``fn(dh, cache)`` -> (dx, dh_prev, dw_ih, dw_hh,
    db_ih, db_hh) for lstmlib.gru.GRUStepCache."""
    _check_returns("gru_step_backward", fn, which, _GRU_STEP_TERMS,
                   _gate_hint(3, GRU_GATES, _GRU_STEP_TERMS, _GRU_TERM_HINTS))


# ---------------------------------------------------------------------------
