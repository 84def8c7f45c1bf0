"""The checks of 03_gradient_norms."""

import numpy as np

from . import _compare
from ._compare import fail, freeze, same_values, thaw
from ._engine import (_ask, _Case, _cases, _check_outputs, _get_part, _graded,
                      _Part, _PARTS, _randn, _rng, _run)

GRADIENT_EXPERIMENT = {"T": 30, "D": 4, "H": 16, "x_seed": 0, "rnn_seed": 1,
                       "lstm_seed": 2, "forget_bias": 3.0, "near": 1, "far": 20}


def prepare():
    """Draw the cases of every part and compute their expected values."""
    import lstmlib
    from lstmlib import analysis
    RNN, LSTM = lstmlib.RNN, lstmlib.LSTM
    ign = analysis.input_gradient_norms
    names = ("input_gradient_norms",)

    def layer_state(kind, seed, D, H, nl="tanh"):
        if kind == "rnn":
            layer = RNN(D, H, nonlinearity=nl, rng=_rng(seed))
        else:
            layer = LSTM(D, H, rng=_rng(seed))
        return layer

    def ign_case(name, kind, seed, T, B, D, H, nl="tanh", with_state=False):
        layer = layer_state(kind, 1400 + seed, D, H, nl)
        rng = _rng(1500 + seed)
        x = _randn(rng, (T, B, D))
        norms = ign(layer, x)
        hy = [("the norms are in reverse time order: entry t is for x_t.",
               (norms[::-1].copy(),))]
        return _Case(name, (kind, 1400 + seed, D, H, nl, x), None, (norms,), hy,
                     extra=dict(layer.params))

    _PARTS["input_gradient_norms"] = _Part(
        "Part A (input_gradient_norms)", names, {
            "visible": [ign_case("RNN tanh, T=6, B=2, D=3, H=4", "rnn", 0, 6, 2, 3, 4)],
            "hidden": [ign_case("LSTM, T=5, B=3, D=2, H=3", "lstm", 1, 5, 3, 2, 3),
                       ign_case("RNN relu, T=1, B=1, D=2, H=3", "rnn", 2, 1, 1, 2, 3, "relu"),
                       ign_case("LSTM, T=8, B=1, D=3, H=5", "lstm", 3, 8, 1, 3, 5)]})

    def fb_case(name, seed, D, H, value):
        layer = LSTM(D, H, rng=_rng(1600 + seed))
        before = dict(layer.params)
        after = {k: v.copy() for k, v in before.items()}
        after["bias_ih_l0"][H:2 * H] = value
        after["bias_hh_l0"][H:2 * H] = 0.0
        swapped = {k: v.copy() for k, v in before.items()}
        swapped["bias_ih_l0"][0:H] = value
        swapped["bias_hh_l0"][0:H] = 0.0
        both = {k: v.copy() for k, v in before.items()}
        both["bias_ih_l0"][H:2 * H] = value
        both["bias_hh_l0"][H:2 * H] = value
        hy = [("the input gate's block (rows 0:H) was set: the forget gate is "
               "the second block, rows H:2H (order i, f, g, o).", swapped),
              ("both biases were set to value, so the total forget bias is "
               "2 * value: set b_ih's block and zero b_hh's.", both)]
        return _Case(name, (1600 + seed, D, H, value), None, after, hy,
                     extra=before)

    _PARTS["set_forget_bias"] = _Part(
        "Part B (set_forget_bias)", names, {
            "visible": [fb_case("D=3, H=4, value 3", 0, 3, 4, 3.0)],
            "hidden": [fb_case("D=2, H=1, value -1", 1, 2, 1, -1.0),
                       fb_case("D=4, H=6, value 0", 2, 4, 6, 0.0)]})

    def ratio_case(name, seed, T, near, far):
        norms = np.exp(_randn(_rng(1700 + seed), (T,)))
        return _Case(name, (norms, near, far), None,
                     (float(norms[T - 1 - far] / norms[T - 1 - near]),),
                     [("near and far are swapped (ratio = far / near).",
                       (float(norms[T - 1 - near] / norms[T - 1 - far]),)),
                      ("the distance counts from the start: use norms[T-1-far] "
                       "/ norms[T-1-near].",
                       (float(norms[far] / norms[near]),))])

    _PARTS["gradient_ratio"] = _Part(
        "Part C (gradient_ratio)", names, {
            "visible": [ratio_case("T=30, near=1, far=20", 0, 30, 1, 20)],
            "hidden": [ratio_case("T=5, near=0, far=4", 1, 5, 0, 4),
                       ratio_case("T=12, near=2, far=7", 2, 12, 2, 7)]})

    # the experiment: the student's three functions run it on a configuration
    # sent from here (the layers' parameters and the input included) and the
    # ratios are compared with those measured here. The self-check uses the
    # notebook's configuration and tests the conclusions; the hidden test
    # draws another one and tests the numbers.
    def experiment_case(name, config, x, rnn, lstm):
        T, D, H = config["T"], config["D"], config["H"]
        near, far = config["near"], config["far"]
        layers, expected = {}, {}
        for key, layer, value in (("rnn", rnn, None), ("lstm", lstm, 0.0),
                                  ("lstm_forget_bias", lstm, config["forget_bias"])):
            kind = "rnn" if layer is rnn else "lstm"
            # the kernel receives the layer as drawn, before set_forget_bias
            spec = {"kind": kind, "D": D, "H": H, "nl": "tanh",
                    "params": {k: v.copy() for k, v in layer.params.items()}}
            params = {k: v.copy() for k, v in layer.params.items()}
            if value is not None:
                spec["forget_bias"] = value
                params["bias_ih_l0"][H:2 * H] = value
                params["bias_hh_l0"][H:2 * H] = 0.0
            norms = ign(_make_layer(kind, 0, D, H, "tanh", params), x)
            expected[key] = {"norms": norms,
                             "ratio": float(norms[T - 1 - far] / norms[T - 1 - near]),
                             "biases": {k: params[k] for k in ("bias_ih_l0", "bias_hh_l0")
                                        if k in params}}
            layers[key] = spec
        return _Case(name, (), None, expected,
                     extra={"x": x, "near": near, "far": far, "layers": layers,
                            "config": config})

    E = GRADIENT_EXPERIMENT
    notebook = dict(E)
    x = np.random.default_rng(E["x_seed"]).standard_normal((E["T"], 1, E["D"]))
    visible = experiment_case(
        "the notebook's configuration", notebook, x,
        RNN(E["D"], E["H"], rng=np.random.default_rng(E["rnn_seed"])),
        LSTM(E["D"], E["H"], rng=np.random.default_rng(E["lstm_seed"])))
    rng = _rng(1750)
    T = int(rng.integers(12, 31))
    near = int(rng.integers(0, 3))
    far = int(rng.integers(T // 2, T - 1))
    if (near, far) == (E["near"], E["far"]):
        far -= 1
    drawn = {"T": T, "D": int(rng.integers(2, 6)), "H": int(rng.integers(4, 13)),
             "B": int(rng.integers(1, 3)), "near": near, "far": far,
             "forget_bias": float(rng.choice([1.0, 2.0, 2.5, 4.0]))}
    hidden = experiment_case(
        f"a drawn configuration (T={T}, D={drawn['D']}, H={drawn['H']}, B={drawn['B']}, "
        f"near={near}, far={far}, forget bias {drawn['forget_bias']:g})", drawn,
        _randn(rng, (T, drawn["B"], drawn["D"])),
        RNN(drawn["D"], drawn["H"], rng=_rng(1751)), LSTM(drawn["D"], drawn["H"], rng=_rng(1752)))
    _PARTS["experiment"] = _Part("Part D (the experiment)", names,
                                 {"visible": [visible], "hidden": [hidden]})


def _make_layer(kind, seed, D, H, nl, params):
    import lstmlib
    layer = lstmlib.RNN(D, H, nonlinearity=nl, rng=_rng(seed)) if kind == "rnn" \
        else lstmlib.LSTM(D, H, rng=_rng(seed))
    for k, v in params.items():
        layer.params[k][...] = v
    return layer


def input_gradient_norms(fn, which="visible"):
    """Part A of 03_gradient_norms: ``fn(layer, x)`` -> (T,) norms of dL/dx_t
    for L = sum(output[T-1] * v), v = ones / sqrt(B*H)."""
    part, cases = _graded("input_gradient_norms", fn, which)
    for where, case in cases:
        kind, seed, D, H, nl, x = thaw(case.args)
        layer = _make_layer(kind, seed, D, H, nl, thaw(case.extra))
        spec = {"kind": kind, "D": D, "H": H, "nl": nl,
                "params": {k: v.copy() for k, v in layer.params.items()}}
        norms = _ask(where, part, "layer_call", [fn], {"layer": spec, "x": x})
        _check_outputs(where, ["the norms"], [norms],
                       list(thaw(case.expected)), case.hyps,
                       lambda w, a, e, m=False: "check the direction v (ones, normalised "
                       "to unit length) and that only the last step's output "
                       "gets a gradient.")


def set_forget_bias(fn, which="visible"):
    """Part B of 03_gradient_norms: ``fn(layer, value)`` sets the forget
    gate's total bias of a one-layer lstmlib.LSTM to ``value``."""
    part, cases = _graded("set_forget_bias", fn, which)
    for where, case in cases:
        seed, D, H, value = thaw(case.args)
        exp = thaw(case.expected)
        keys = sorted(exp)
        spec = {"kind": "lstm", "D": D, "H": H, "params": thaw(case.extra)}
        after = _ask(where, part, "layer_mutate", [fn],
                     {"layer": spec, "value": value, "keys": keys})
        if type(after) is not dict:
            fail(f"{where}: the grader could not read the layer's parameters.")
        got = [after.get(k) for k in keys]
        hyps = [(t, freeze([thaw(f)[k] for k in keys])) for t, f in case.hyps]
        _check_outputs(where, [f"layer.params[{k!r}]" for k in keys], got,
                       [exp[k] for k in keys], hyps,
                       lambda w, a, e, m=False: "the forget gate is the second block, "
                       "rows H:2H of bias_ih_l0 and bias_hh_l0; change them in "
                       "place.")


def gradient_ratio(fn, which="visible"):
    """Part C of 03_gradient_norms: ``fn(norms, near, far)`` ->
    norms[T-1-far] / norms[T-1-near] as a float."""
    part, cases = _graded("gradient_ratio", fn, which)
    for where, case in cases:
        norms, near, far = thaw(case.args)
        r = _compare.to_float(where, "the ratio",
                           _run(where, fn, part, (norms, near, far), {}))
        exp = thaw(case.expected)[0]
        if abs(r - exp) <= 1e-9 * abs(exp) + 1e-300:
            continue
        cause = None
        for text, f in case.hyps:
            h = thaw(f)[0]
            if abs(r - h) <= 1e-9 * abs(h):
                cause = text
        fail(f"{where}: the ratio is {r!r}, expected {exp!r}."
             + (f"\n  Likely cause: {cause}" if cause else ""))


def _experiment_cause(key, got, exp, H):
    """Which of the student's functions made the ratio ``key`` differ."""
    biases = got.get("biases")
    biases = biases if type(biases) is dict else {}
    if key != "rnn":
        for k, e in exp["biases"].items():
            if not same_values(biases.get(k), e, 0.0, 0.0):
                return (f"after set_forget_bias, the LSTM's {k} is not the expected one: "
                        f"rows H:2H ({H}:{2 * H}) of bias_ih_l0 become the value, those of "
                        f"bias_hh_l0 0, nothing else changes (Part B).")
    if not same_values(got.get("norms"), exp["norms"]):
        return ("input_gradient_norms gives other norms for this layer than the "
                "grader's (Part A).")
    return ("the norms are right, so gradient_ratio is wrong: norms[T-1-far] / "
            "norms[T-1-near] (Part C).")


def experiment(input_gradient_norms, set_forget_bias, gradient_ratio, which="visible"):
    """Part D of 03_gradient_norms: the experiment, run by the student's
    ``input_gradient_norms``, ``set_forget_bias`` and ``gradient_ratio`` on
    a configuration sent from here (layers' parameters, input, near, far,
    forget bias), never read from the notebook's variables. The self-check
    ("visible") runs the notebook's configuration and tests the conclusions;
    the hidden test runs a configuration drawn here and compares the three
    ratios with the grader's own."""
    part = _get_part("experiment")
    case = _cases(part, which)[0]
    where = f"{part.label}, {case.name}"
    exp = thaw(case.expected)
    extra = thaw(case.extra)
    config = extra.pop("config")
    got = _ask(where, part, "experiment",
               [input_gradient_norms, set_forget_bias, gradient_ratio], extra)
    if type(got) is not dict or sorted(got) != sorted(exp):
        fail(f"{where}: the grader could not read the experiment's results.")
    ratios = {}
    for k in exp:
        if type(got[k]) is not dict:
            fail(f"{where}: the grader could not read the experiment's results.")
        ratios[k] = _compare.to_float(where, f"gradient_ratio's value for {k!r}",
                                   got[k].get("ratio"))
    if which == "visible":
        # the conclusions, whatever the exact numbers
        if not ratios["rnn"] < 1e-2:
            fail(f"{where}: for the tanh RNN the gradient {config['far']} steps back "
                 f"should be far smaller than {config['near']} step back (ratio < 0.01), "
                 f"yours is {ratios['rnn']:.3g}: check input_gradient_norms and "
                 f"gradient_ratio.")
        if not ratios["lstm_forget_bias"] > ratios["lstm"]:
            fail(f"{where}: the LSTM with forget bias {config['forget_bias']} "
                 f"should keep more gradient than with forget bias 0: "
                 f"{ratios['lstm_forget_bias']:.3g} vs {ratios['lstm']:.3g}: check "
                 f"set_forget_bias.")
        return
    for k in ("rnn", "lstm", "lstm_forget_bias"):
        e = exp[k]["ratio"]
        if not abs(ratios[k] - e) <= 1e-6 * abs(e):
            fail(f"{where}: the ratio of {k!r} is {ratios[k]:.6g}, expected {e:.6g}.\n"
                 f"  Likely cause: {_experiment_cause(k, got[k], exp[k], config['H'])}")


# ---------------------------------------------------------------------------
