"""What a graded kernel runs when the grader asks it to call a function.

The grader (``lstmlib.grading``, in its own process) sends one request per
call: the names of the notebook's functions, a *recipe* saying how to call
them, the inputs as plain data, and a label for messages. :func:`serve`
looks the functions up in the notebook's namespace, builds the arguments
(lstmlib layers, a model and its optimiser, a closure for a numerical
gradient) from the inputs, calls the functions under the delegation guards
and sends back what they returned, as plain data, in a display message of
type :data:`MIME`. Nothing here knows an expected value: the grader
compares what comes back with its own reference.

The same recipes run the self-checks at home (:mod:`lstmlib.selfcheck.checks`),
without the transport.
"""
import json
import traceback

import numpy as np

from . import _codec, guards

MIME = "text/x-lstmlib-answer"


class Refused(Exception):
    """The call was refused (delegation, missing function); the message
    says why and is shown as is."""


class Raised(Exception):
    """The student's function raised; the message names the exception."""


def _describe_exception(exc, limit=300):
    msg = str(exc)
    if len(msg) > limit:
        msg = msg[:limit] + " ..."
    return f"{type(exc).__name__}: {msg}"


def _no_reverse_wrap(orig, log):
    """lstm_forward that refuses reverse=True (the exercise is to reverse)."""
    name = f"{orig.__module__}.{orig.__name__}(..., reverse=True)"

    def lstm_forward(*args, **kwargs):
        if kwargs.get("reverse") or (len(args) > 8 and args[8]):
            log.append(name)
            raise guards.DelegationError(f"{name} may not be used here")
        return orig(*args, **kwargs)
    return lstm_forward


WRAPS = {"no_reverse": {"lstm_forward": _no_reverse_wrap}}


class Call:
    """Calls one notebook function under the guards of its part."""

    def __init__(self, fn, where, names, wrap=None, checked=None):
        self.fn = fn
        self.where = where
        self.names = tuple(names)
        self.wrap = WRAPS.get(wrap) if isinstance(wrap, str) else wrap
        self._checked = checked

    def require_own(self):
        try:
            guards.require_own_function(self.where, self.fn, self.names)
        except guards.GuardFailure as exc:
            raise Refused(str(exc)) from None

    def __call__(self, *args, **kwargs):
        tw = guards.tripwires(self.names, self.wrap,
                              getattr(self.fn, "__globals__", None), self.fn)
        error = None
        with tw:
            try:
                out = self.fn(*args, **kwargs)
            except guards.DelegationError:
                out = None
            except Exception as exc:        # noqa: BLE001  (the student's error)
                error = _describe_exception(exc)
                out = None
        try:
            guards.check_log(self.where, tw.log)
        except guards.GuardFailure as exc:
            raise Refused(str(exc)) from None
        if error is not None:
            raise Raised(error)
        return out


# ---------------------------------------------------------------------------
# recipes: (calls, payload) -> plain result

def _call(calls, p):
    return calls[0](*p.get("args", ()), **p.get("kwargs", {}))


def _numgrad(calls, p):
    x, W, df, h = p["x"], p["W"], p["df"], p["h"]
    count = [0]

    def f():
        count[0] += 1
        return np.tanh(x @ W)

    out = calls[0](f, x, df, h)
    return (out, x, count[0])


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


def _training(calls, p):
    """build_model, then ``steps`` train_steps on the adding problem."""
    from lstmlib.data import adding_problem
    build, step = calls
    out = build(np.random.default_rng(p["seed"]))
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        return {"built": type(out).__name__}
    model, opt = out
    rnn = getattr(model, "rnn", None)
    head = getattr(model, "head", None)
    info = {"model": _qualname(model), "rnn": _qualname(rnn), "head": _qualname(head),
            "num_layers": getattr(rnn, "num_layers", None),
            "bidirectional": getattr(rnn, "bidirectional", None),
            "readout": getattr(model, "readout", None),
            "nonlinearity": getattr(rnn, "nonlinearity", None),
            "hidden_size": getattr(rnn, "hidden_size", None)}
    for k in ("num_layers", "bidirectional", "readout", "nonlinearity", "hidden_size"):
        if type(info[k]) not in (int, bool, str, type(None)):
            info[k] = repr(info[k])[:80]
    count = [0]
    if hasattr(model, "forward"):
        original = model.forward

        def counted(*a, **k):
            count[0] += 1
            return original(*a, **k)
        model.forward = counted
    rng = np.random.default_rng(p["data_seed"])
    losses = []
    for _ in range(p["steps"]):
        x, y = adding_problem(p["batch"], p["T"], rng)
        losses.append(step(model, opt, x, y, p["max_norm"]))
    params = {k: v for k, v in getattr(rnn, "params", {}).items()}
    head_params = {k: v for k, v in getattr(head, "params", {}).items()}
    marks = [losses[i] for i in (0, len(losses) // 2, -1)] if losses else []
    return {"info": info, "forward_calls": count[0], "losses": marks,
            "params": params, "head_params": head_params}


def _variable(calls, p):
    return calls[0]


RECIPES = {"call": _call, "numgrad": _numgrad, "layer_call": _layer_call,
           "layer_mutate": _layer_mutate, "clip": _clip, "train_steps": _train_steps,
           "training": _training, "variable": _variable}
#: recipes whose functions are checked by their own rules (not by guards'
#: "a plain Python function of the notebook")
_OWN_RULES = ("variable",)


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
    calls = [Call(fn, where, request.get("names", ()), request.get("wrap")) for fn in fns]
    if request["recipe"] not in _OWN_RULES:
        for c in calls:
            c.require_own()
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
