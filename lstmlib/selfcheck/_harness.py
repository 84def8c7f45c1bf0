"""What a graded kernel runs when the grader asks it to call a function.

The grader (``lstmlib.grading``, in its own process) sends one request per
call: the names of the notebook's functions, a *recipe* saying how to call
them, the inputs as plain data, and a label for messages. :func:`serve`
looks the functions up in the notebook's namespace, builds the arguments
(lstmlib layers, a model and its optimiser, a closure for a numerical
gradient) from the inputs, calls the functions and sends back what they
returned, as plain data, in a display message of type :data:`MIME`. Nothing
here knows an expected value: the grader compares what comes back with its
own reference. Nothing here guards against delegation either: a graded
kernel holds only the assignment's edition of lstmlib
(:mod:`lstmlib.grading.kernel_edition`), with no reference to delegate to.

The same recipes run the self-checks at home (:mod:`lstmlib.selfcheck.checks`),
without the transport.
"""
import json
import traceback

import numpy as np

from . import _codec

MIME = "text/x-lstmlib-answer"


class Refused(Exception):
    """The call was refused (a missing function); the message says why and
    is shown as is."""


class Raised(Exception):
    """The student's function raised; the message names the exception."""


def _describe_exception(exc, limit=300):
    msg = str(exc)
    if len(msg) > limit:
        msg = msg[:limit] + " ..."
    return f"{type(exc).__name__}: {msg}"


class Call:
    """Calls one notebook function; its exception becomes :class:`Raised`."""

    def __init__(self, fn, where):
        self.fn = fn
        self.where = where

    def __call__(self, *args, **kwargs):
        try:
            return self.fn(*args, **kwargs)
        except Exception as exc:            # noqa: BLE001  (the student's error)
            raise Raised(_describe_exception(exc)) from None


# ---------------------------------------------------------------------------
# recipes: (calls, payload) -> plain result

def _call(calls, p):
    return calls[0](*p.get("args", ()), **p.get("kwargs", {}))


def _numgrad(calls, p):
    """f knows only the values the grader sent: at x (``values[0]``) and at
    x + h e_i, x - h e_i (``values[1 + 2i]``, ``values[2 + 2i]``, i the flat
    index); anywhere else it returns NaN. Nothing here holds f's formula."""
    x, df, h, values = p["x"], p["df"], p["h"], p["values"]
    x0 = x.ravel().copy()
    tol = 8 * np.finfo(x0.dtype).eps        # x[i] += h; x[i] -= 2 * h lands a few ulps off
    seen = {"calls": 0, "elsewhere": 0}

    def f():
        seen["calls"] += 1
        d = np.asarray(x, dtype=x0.dtype).ravel() - x0
        moved = np.flatnonzero(np.abs(d) > tol * np.abs(x0))
        if moved.size == 0:
            return values[0].copy()
        if moved.size == 1:
            i = int(moved[0])
            for k, step in ((1 + 2 * i, h), (2 + 2 * i, -h)):
                if abs(d[i] - step) <= tol * (abs(x0[i]) + h):
                    return values[k].copy()
        seen["elsewhere"] += 1
        return np.full_like(values[0], np.nan)

    out = calls[0](f, x, df, h)
    return (out, x, seen)


def _layer(spec):
    import lstmlib
    rng = np.random.default_rng(0)
    if spec["kind"] == "rnn":
        layer = lstmlib.RNN(spec["D"], spec["H"], nonlinearity=spec.get("nl", "tanh"), rng=rng)
    else:
        layer = lstmlib.LSTM(spec["D"], spec["H"], rng=rng)
    for k, v in spec["params"].items():
        layer.params[k][...] = v
    return layer


def _layer_call(calls, p):
    return calls[0](_layer(p["layer"]), p["x"])


def _layer_mutate(calls, p):
    layer = _layer(p["layer"])
    calls[0](layer, p["value"])
    return {k: layer.params.get(k) for k in p["keys"]}


def _clip(calls, p):
    grads = p["grads"]
    arrays = dict(grads)
    norm = calls[0](grads, p["max_norm"])
    replaced = [k for k in arrays if grads.get(k) is not arrays[k]]
    return (norm, replaced, arrays)


def _model(H, dtype, params):
    import lstmlib
    rng = np.random.default_rng(0)
    model = lstmlib.SequenceModel(lstmlib.LSTM(2, H, rng=rng, dtype=dtype),
                                  lstmlib.Linear(H, 1, rng=rng, dtype=dtype))
    for k, v in params.items():
        model.params[k][...] = v
    return model


def _train_steps(calls, p):
    from lstmlib import optim
    model = _model(p["H"], p["dtype"], p["params"])
    opt = optim.Adam(model.params, lr=p["lr"])
    loss = None
    for x, y in p["batches"]:
        loss = calls[0](model, opt, x, y, p["max_norm"])
    return (loss, {k: model.params[k] for k in p["keys"]})


def _qualname(obj):
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}"


def _training_model(calls, p):
    """Part D of 08: what ``build_model(rng)`` builds, described as plain
    data (the grader draws the parameters itself)."""
    out = calls[0](np.random.default_rng(p["seed"]))
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        return {"built": type(out).__name__}
    model, opt = out
    rnn = getattr(model, "rnn", None)
    head = getattr(model, "head", None)
    info = {"model": _qualname(model), "rnn": _qualname(rnn), "head": _qualname(head),
            "optimizer": _qualname(opt)}
    for k in ("num_layers", "bidirectional", "nonlinearity", "hidden_size", "input_size",
              "bias", "batch_first"):
        info[k] = getattr(rnn, k, None)
    info["options"] = getattr(rnn, "options", None)
    info["readout"] = getattr(model, "readout", None)
    for k in ("lr", "b1", "b2", "eps", "momentum", "weight_decay"):
        info[f"optimizer.{k}"] = getattr(opt, k, None)
    held = getattr(opt, "params", None)
    info["optimizer.params"] = sorted(held) if isinstance(held, dict) else None
    params = getattr(model, "params", None)
    info["params"] = {k: [list(np.shape(v)), str(getattr(v, "dtype", type(v).__name__))]
                      for k, v in params.items()} if isinstance(params, dict) else None
    for k, v in list(info.items()):
        if type(v) not in (int, float, bool, str, dict, list, type(None)):
            info[k] = repr(v)[:80]
    return info


def _training(calls, p):
    """Part D of 08: a fresh ``build_model``, the grader's parameters and
    optimiser state loaded into it in place, then the student's train_step
    on each of the grader's batches; the losses and the parameters after."""
    build, step = calls
    model, opt = build(np.random.default_rng(p["seed"]))
    params = model.params
    for k, v in p["params"].items():
        params[k][...] = v
    for name, value in p["state"].items():
        if isinstance(value, dict):
            held = getattr(opt, name)
            for k, v in value.items():
                held[k][...] = v
        else:
            setattr(opt, name, value)
    losses = [step(model, opt, x, y, p["max_norm"]) for x, y in p["batches"]]
    return {"losses": losses, "params": {k: v.copy() for k, v in model.params.items()}}


def _experiment(calls, p):
    """Part D of 03: the experiment on the grader's configuration, with the
    student's input_gradient_norms, set_forget_bias and gradient_ratio."""
    norms_of, set_forget_bias, ratio_of = calls
    out = {}
    for key, spec in p["layers"].items():
        layer = _layer(spec)
        if "forget_bias" in spec:
            set_forget_bias(layer, spec["forget_bias"])
        norms = norms_of(layer, p["x"])
        out[key] = {"norms": norms, "ratio": ratio_of(norms, p["near"], p["far"]),
                    "biases": {k: layer.params[k] for k in ("bias_ih_l0", "bias_hh_l0")
                               if k in layer.params}}
    return out


def _variable(calls, p):
    return calls[0]


RECIPES = {"call": _call, "numgrad": _numgrad, "layer_call": _layer_call,
           "layer_mutate": _layer_mutate, "clip": _clip, "train_steps": _train_steps,
           "training_model": _training_model, "training": _training,
           "experiment": _experiment, "variable": _variable}


def run(namespace, request, objects=None):
    """Run one request; return the plain result. ``objects`` (at home)
    gives the functions themselves instead of names to look up."""
    recipe = RECIPES[request["recipe"]]
    where = request["where"]
    fns = []
    for i, name in enumerate(request["functions"]):
        if objects is not None:
            fns.append(objects[i])
            continue
        if name not in namespace:
            raise Refused(f"{where}: {name} is not defined: run the cell that defines it "
                          f"(NameError: name {name!r} is not defined)")
        fns.append(namespace[name])
    if request["recipe"] == "variable":
        return fns[0]
    calls = [Call(fn, where) for fn in fns]      # the request's names and wrap: unused
    payload = dict(request.get("payload") or {}, where=where)
    return recipe(calls, payload)


def answer(namespace, request):
    """The reply to one request, as a JSON-ready dict."""
    try:
        value = run(namespace, request)
    except Refused as exc:
        return {"refused": str(exc)}
    except Raised as exc:
        return {"raised": str(exc)}
    except Exception as exc:                        # noqa: BLE001 (the harness itself)
        return {"harness": _describe_exception(exc, 600),
                "trace": traceback.format_exc(limit=4)[-1500:]}
    return {"ok": _codec.encode(value)}


def serve(namespace, request_text):
    """Entry point of the code the grader runs in the kernel."""
    request = _codec.json.loads(request_text)
    request["payload"] = _codec.decode(request["payload"])
    reply = answer(namespace, request)
    reply["token"] = request.get("token", "")
    from IPython.display import publish_display_data
    publish_display_data({MIME: json.dumps(reply, separators=(",", ":"), allow_nan=False)})
