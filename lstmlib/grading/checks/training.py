"""The checks of 08_training."""
import math


from . import _compare
from ._compare import fail, fmt, freeze, same_values, thaw, unpack
from ._engine import (_ask, _Case, _cases, _check_outputs, _get_part, _graded,
                      _Part, _PARTS, _randn, _rng, _run, _seed)

TRAINING = {"T": 6, "batch": 32, "steps": 300, "max_norm": 1.0,
            "eval_n": 512, "threshold": 0.04, "chunk": 50, "max_hidden": 128}
_TRAIN = {}          # captured classes and functions for the training checks


def prepare():
    """Draw the cases of every part and compute their expected values."""
    import lstmlib
    from lstmlib import data, losses, optim
    _TRAIN.update(SequenceModel=lstmlib.SequenceModel, LSTM=lstmlib.LSTM,
                  GRU=lstmlib.GRU, RNN=lstmlib.RNN, Linear=lstmlib.Linear,
                  Adam=optim.Adam, SGD=optim.SGD, AdamW=optim.AdamW,
                  mse=losses.mse, clip=optim.clip_grad_norm, adding=data.adding_problem)
    names = ("mse", "clip_grad_norm", "train", "global_norm")
    ref_mse = losses.mse
    ref_clip = optim.clip_grad_norm

    def mse_case(name, seed, shape, dtype="float64"):
        rng = _rng(1800 + seed)
        pred = _randn(rng, shape, dtype)
        target = _randn(rng, shape, dtype)
        loss, d = ref_mse(pred, target)
        diff = pred - target
        hy = [("the gradient of the mean is 2 * (pred - target) / N, with N "
               "the number of entries.", (None, (diff / diff.size).astype(dtype))),
              ("the gradient lacks the 1/N of the mean.",
               (None, (2 * diff).astype(dtype)))]
        return _Case(name, (pred, target), None, (float(loss), d), hy)

    _PARTS["mse"] = _Part("Part A (mse)", names, {
        "visible": [mse_case("pred (4, 1)", 0, (4, 1))],
        "hidden": [mse_case("pred (3, 2, 5)", 1, (3, 2, 5)),
                   mse_case("pred (1, 1), float32", 2, (1, 1), "float32")]})

    def clip_case(name, seed, shapes, max_norm):
        rng = _rng(1900 + seed)
        grads = {f"p{k}": _randn(rng, s) for k, s in enumerate(shapes)}
        clipped = {k: v.copy() for k, v in grads.items()}
        norm = ref_clip(clipped, max_norm)
        return _Case(name, (grads, max_norm), None, (float(norm), clipped))

    _PARTS["clip_grad_norm"] = _Part("Part B (clip_grad_norm)", names, {
        "visible": [clip_case("norm above max_norm", 0, [(3, 2), (4,)], 1.0)],
        "hidden": [clip_case("norm below max_norm", 1, [(2, 2)], 100.0),
                   clip_case("three arrays, max_norm 0.5", 2,
                             [(2, 3), (3,), (1, 1)], 0.5)]})

    def build(seed, H, dtype):
        rng = _rng(seed)
        model = lstmlib.SequenceModel(lstmlib.LSTM(2, H, rng=rng, dtype=dtype),
                                      lstmlib.Linear(H, 1, rng=rng, dtype=dtype))
        return model

    def step_case(name, seed, H, steps, max_norm, lr, dtype="float64"):
        model = build(2000 + seed, H, dtype)
        init = {k: v.copy() for k, v in model.params.items()}
        opt = optim.Adam(model.params, lr=lr)
        rng = _rng(2100 + seed)
        batches = [data.adding_problem(8, 6, rng, dtype=dtype) for _ in range(steps)]
        loss = None
        for x, y in batches:
            pred = model.forward(x)
            loss, d = ref_mse(pred, y)
            model.backward(d)
            norm = ref_clip(model.grads, max_norm)
            if (norm > max_norm) != (max_norm < 1.0):
                # by design: clipping is active exactly in the small-max_norm cases
                raise RuntimeError(f"fixture {name}: clipping active = "
                                   f"{norm > max_norm}, norm {norm}")
            opt.step(model.grads)
        final = {k: v.copy() for k, v in model.params.items()}
        return _Case(name, (2000 + seed, H, dtype, lr, max_norm, batches), None,
                     (float(loss), final), extra=init)

    _PARTS["train_step"] = _Part("Part C (train_step)", names, {
        "visible": [step_case("1 step, H=4, no clipping", 0, 4, 1, 1e6, 0.01)],
        "hidden": [step_case("3 steps, H=3, clipping active", 1, 3, 3, 0.05, 0.05),
                   step_case("2 steps, H=2, float32", 2, 2, 2, 1e6, 0.01, "float32")]})
    _PARTS["training"] = _Part("Part D (training)", names, {
        "visible": [_Case("seed 0", (0,))],
        "hidden": [_Case("seed 1", (1,)), _Case("seed 2", (2,))]})


def mse(fn, which="visible"):
    """Part A of 08_training: ``loss, dpred = fn(pred, target)``."""
    part, cases = _graded("mse", fn, which)
    for where, case in cases:
        out = _run(where, fn, part, thaw(case.args), {})
        loss, d = unpack(where, out, 2, "(loss, dpred)")
        exp_loss, exp_d = thaw(case.expected)
        got = _compare.to_float(where, "the loss", loss)
        if not abs(got - exp_loss) <= 1e-5 * abs(exp_loss) + 1e-9:
            fail(f"{where}: the loss is {got!r}, expected {exp_loss!r} (the "
                 f"mean of (pred - target)**2 over all entries).")
        _check_outputs(where, ["dpred"], [d], [exp_d],
                       [(t, freeze([thaw(f)[1]])) for t, f in case.hyps])


def clip_grad_norm(fn, which="visible"):
    """Part B of 08_training: ``norm = fn(grads, max_norm)`` scales the dict
    of arrays in place when their global norm exceeds max_norm."""
    part, cases = _graded("clip_grad_norm", fn, which)
    for where, case in cases:
        grads, max_norm = thaw(case.args)
        # the kernel keeps the dict's arrays, calls fn(grads, max_norm) and
        # reports the norm, the keys whose array was replaced, the arrays
        got = _ask(where, part, "clip", [fn], {"grads": grads, "max_norm": max_norm})
        norm, replaced, arrays = unpack(where, got, 3, "(norm, replaced, arrays)")
        exp_norm, exp = thaw(case.expected)
        got = _compare.to_float(where, "the returned norm", norm)
        if not abs(got - exp_norm) <= 1e-6 * abs(exp_norm):
            fail(f"{where}: the returned norm is {got!r}, expected {exp_norm!r}: "
                 f"the global norm before clipping, sqrt of the sum of squares "
                 f"of every entry of every array.")
        keys = sorted(exp)
        for k in keys:
            if k in replaced or k not in arrays:
                fail(f"{where}: grads[{k!r}] was replaced by a new array: scale "
                     f"the arrays in place (g *= scale), the optimiser holds "
                     f"references to them.")
        _check_outputs(where, [f"grads[{k!r}]" for k in keys],
                       [arrays[k] for k in keys], [exp[k] for k in keys], [],
                       lambda w, a, e, m=False: "scale = max_norm / (norm + 1e-6) when "
                       "norm > max_norm; otherwise leave the gradients alone.")


def train_step(fn, which="visible"):
    """Part C of 08_training: ``loss = fn(model, optimizer, x, y, max_norm)``
    does one step: forward, loss, backward, clip, update."""
    part, cases = _graded("train_step", fn, which)
    for where, case in cases:
        seed, H, dtype, lr, max_norm, batches = thaw(case.args)
        exp_loss, exp = thaw(case.expected)
        keys = sorted(exp)
        # the kernel builds the model (lstmlib.LSTM + Linear) with these
        # parameters and an Adam optimiser, calls fn on every batch and
        # reports the last loss and the parameters after the steps
        got = _ask(where, part, "train_steps", [fn], {
            "H": H, "dtype": dtype, "lr": lr, "max_norm": max_norm,
            "params": thaw(case.extra), "batches": [list(b) for b in batches],
            "keys": keys})
        loss, params = unpack(where, got, 2, "(loss, parameters)")
        if type(params) is not dict:
            fail(f"{where}: the grader could not read the model's parameters.")
        got = _compare.to_float(where, "the returned loss", loss)
        rtol = 2e-4 if dtype == "float32" else 1e-6
        if not abs(got - exp_loss) <= rtol * abs(exp_loss):
            fail(f"{where}: the returned loss is {got!r}, expected {exp_loss!r} "
                 f"(the loss of this batch before the update).")
        _check_outputs(where, [f"model.params[{k!r}]" for k in keys],
                       [params.get(k) for k in keys], [exp[k] for k in keys], [],
                       lambda w, a, e, m=False: "one step is: pred = model.forward(x); "
                       "loss, d = mse(pred, y); model.backward(d); "
                       "clip_grad_norm(model.grads, max_norm); "
                       "optimizer.step(model.grads).")


def _qual(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


#: the optimisers Part D accepts, with the hyper-parameters read from them
_OPTIMIZERS = {"Adam": ("lr", "b1", "b2", "eps"), "AdamW": ("lr", "b1", "b2", "eps",
                                                            "weight_decay"),
               "SGD": ("lr", "momentum")}


def _number(where, what, value, low=0.0):
    if type(value) not in (int, float) or math.isnan(value) or \
            math.isinf(value) or not value >= low:
        fail(f"{where}: {what} should be a finite number of at least {low}, "
             f"received {fmt(value, 60)}.")
    return float(value)


def _training_reference(where, info, seed):
    """The model and optimiser that ``info`` (the kernel's description of
    what build_model built) describes, built here with parameters drawn from
    the grader's seed."""
    if type(info) is not dict:
        fail(f"{where}: the grader could not read what build_model built.")
    if "built" in info:
        fail(f"{where}: expected your function to return (model, optimizer), "
             f"received {info['built']}.")
    if info.get("model") != _qual(_TRAIN["SequenceModel"]):
        fail(f"{where}: build_model should return an lstmlib.SequenceModel, "
             f"received {str(info.get('model', '?')).rpartition('.')[2]}.")
    kinds = {_qual(_TRAIN[k]): k for k in ("LSTM", "GRU", "RNN")}
    kind = kinds.get(info.get("rnn"))
    if kind is None or info.get("num_layers") != 1 or info.get("bidirectional") is not False \
            or info.get("readout") != "last" or info.get("head") != _qual(_TRAIN["Linear"]) \
            or info.get("input_size") != 2 or info.get("batch_first") is not False:
        fail(f"{where}: the model should be one lstmlib LSTM, GRU or RNN layer "
             f"(2 input features, one layer, one direction, time-major) with a "
             f"Linear head reading the last step.")
    H = info.get("hidden_size")
    if type(H) is not int or not 1 <= H <= TRAINING["max_hidden"]:
        fail(f"{where}: hidden_size should be an int from 1 to {TRAINING['max_hidden']}, "
             f"received {fmt(H, 60)}.")
    options = info.get("options")
    allowed = ({"nonlinearity": ("tanh", "relu")} if kind == "RNN" else {})
    if type(options) is not dict or any(
            k not in allowed or v not in allowed[k] for k, v in options.items()):
        fail(f"{where}: the {kind} layer's options {fmt(options, 120)} are not among "
             f"those this part accepts ({allowed or 'none'}).")
    described = info.get("params")
    if type(described) is not dict:
        fail(f"{where}: the grader could not read the model's parameters.")
    dtypes = {d[1] for d in described.values()
              if type(d) is list and len(d) == 2}
    if len(dtypes) != 1 or list(dtypes)[0] not in ("float64", "float32"):
        fail(f"{where}: the model's parameters should all be float64 (or all float32), "
             f"received {sorted(str(d) for d in dtypes)}.")
    dtype = list(dtypes)[0]
    rng = _rng(3000 + seed)
    rnn = _TRAIN[kind](2, H, bias=info.get("bias") is True, rng=rng, dtype=dtype,
                       **options)
    head = _TRAIN["Linear"](H, 1, bias="head.bias" in described, rng=rng, dtype=dtype)
    model = _TRAIN["SequenceModel"](rnn, head)
    shapes = {k: [list(v.shape), str(v.dtype)] for k, v in model.params.items()}
    if described != shapes:
        wrong = sorted(k for k in list(shapes) + list(described)
                        if shapes.get(k) != described.get(k))
        fail(f"{where}: the model's parameters should be {shapes} for a {kind} of "
             f"hidden size {H} with a Linear head of one output; yours differ at "
             f"{wrong[:4]}: {[described.get(k) for k in wrong[:4]]}.")
    name = str(info.get("optimizer", "?")).rpartition(".")[2]
    if info.get("optimizer") not in {_qual(_TRAIN[k]) for k in _OPTIMIZERS}:
        fail(f"{where}: the optimiser should be one of lstmlib's "
             f"({', '.join(_OPTIMIZERS)}), received {name}.")
    if info.get("optimizer.params") != sorted(shapes):
        fail(f"{where}: the optimiser should update every parameter of model.params "
             f"({sorted(shapes)}); yours holds {fmt(info.get('optimizer.params'), 200)}: "
             f"build it with {name}(model.params, ...).")
    hyper = {k: _number(where, f"the optimiser's {k}", info.get(f"optimizer.{k}"))
             for k in _OPTIMIZERS[name]}
    if not hyper["lr"] > 0:
        fail(f"{where}: the learning rate should be positive, received {hyper['lr']}.")
    if name == "SGD":
        opt = _TRAIN["SGD"](model.params, hyper["lr"], momentum=hyper["momentum"])
    else:
        extra = {"weight_decay": hyper["weight_decay"]} if name == "AdamW" else {}
        opt = _TRAIN[name](model.params, lr=hyper["lr"], betas=(hyper["b1"], hyper["b2"]),
                           eps=hyper["eps"], **extra)
    return model, opt, kind, dtype


def _optimizer_state(opt):
    """The state of a reference optimiser (Adam's step count and moments,
    SGD's velocity), copied."""
    if hasattr(opt, "velocity"):
        return {"velocity": {k: v.copy() for k, v in opt.velocity.items()}}
    return {"t": opt.t, "m": {k: v.copy() for k, v in opt.m.items()},
            "v": {k: v.copy() for k, v in opt.v.items()}}


_STEP_HINT = ("one step is: pred = model.forward(x); loss, d = mse(pred, y); "
              "model.backward(d); clip_grad_norm(model.grads, max_norm); "
              "optimizer.step(model.grads); return loss")


def _check_chunk(where, first, chunk, got, dtype):
    """Compare the kernel's report on one chunk of steps (the losses and the
    parameters after it) with the reference's."""
    start, exp_losses, exp_params = chunk
    last = first + len(exp_losses) - 1
    if type(got) is not dict or type(got.get("losses")) is not list \
            or len(got["losses"]) != len(exp_losses) \
            or type(got.get("params")) is not dict:
        fail(f"{where}: the grader could not read the losses and parameters of "
             f"steps {first}-{last}.")
    rtol, atol = (1e-5, 1e-8) if dtype == "float64" else (2e-3, 1e-5)
    keys = sorted(exp_params)
    params = got["params"]
    right = all(same_values(params.get(k), exp_params[k], rtol, atol) for k in keys)
    unchanged = all(same_values(params.get(k), start[k], 0.0, 0.0) for k in keys)
    missing = (f"the parameters did not change during steps {first}-{last}: the update "
               f"(optimizer.step(model.grads)) is missing, or it replaced the arrays "
               f"instead of changing them in place")
    for i, (loss, e) in enumerate(zip(got["losses"], exp_losses)):
        value = _compare.to_float(f"{where}, step {first + i}",
                               "the loss returned by train_step", loss)
        if abs(value - e) <= rtol * abs(e) + atol:
            continue
        if i == 0 or right:
            why = ("the model's parameters at this step were the grader's, so the "
                   "loss itself is computed differently: the mean of (pred - y)**2 "
                   "over the batch, before the update")
            if right:
                why += " (your updates are right: only the returned loss differs)"
        elif unchanged:
            why = missing
        else:
            done = f"step {first}" if i == 1 else f"steps {first}-{first + i - 1}"
            why = (f"the loss of {done} was right, so the update made by step "
                   f"{first + i - 1} differs from the grader's")
        fail(f"{where}, step {first + i}: train_step returned the loss {value!r}, "
             f"expected {e!r}.\n  Likely cause: {why}.\n  ({_STEP_HINT})")
    if right:
        return

    def hint(wrong, actuals, expecteds, matched=False):
        if unchanged:
            return missing
        return (f"the losses of steps {first}-{last} were right, so the update "
                f"differs (gradient, clipping or optimizer.step): {_STEP_HINT}")

    _check_outputs(f"{where}, after steps {first}-{last}",
                   [f"model.params[{k!r}]" for k in keys],
                   [params.get(k) for k in keys], [exp_params[k] for k in keys], [], hint)


def training(build_model, step_fn, which="visible"):
    """Part D of 08_training: with the model and optimiser from
    ``build_model(rng)`` and the student's ``train_step``, TRAINING["steps"]
    steps on the adding problem must bring the held-out MSE below
    TRAINING["threshold"].

    The grader runs the training. The kernel describes what build_model
    builds (layer, sizes, head, optimiser and its hyper-parameters); the
    grader builds that model, draws its initial parameters from its own
    seed and trains it with the reference step (lstmlib's forward, mse,
    backward, clip_grad_norm, the same optimiser) on batches drawn here.
    The student's train_step must make the same steps: in chunks of
    TRAINING["chunk"] steps, the kernel receives the grader's parameters
    and optimiser state at the chunk's start (loaded into a fresh
    build_model's model and optimiser, in place), calls train_step on the
    chunk's batches and reports every loss and the parameters at the end,
    which must equal the grader's. The held-out error is computed here,
    from the grader's own parameters: nothing trained elsewhere enters.
    """
    part = _get_part("training")
    C = TRAINING
    for case in _cases(part, which):
        where = f"{part.label}, {case.name}"
        (seed,) = thaw(case.args)
        info = _ask(where, part, "training_model", [build_model], {"seed": _seed(3000 + seed)})
        model, opt, kind, dtype = _training_reference(where, info, seed)
        rng = _rng(3100 + seed)
        batches = [_TRAIN["adding"](C["batch"], C["T"], rng, dtype=dtype)
                   for _ in range(C["steps"])]
        losses = []
        for first in range(0, C["steps"], C["chunk"]):
            chunk_batches = batches[first:first + C["chunk"]]
            start = {k: v.copy() for k, v in model.params.items()}
            state = _optimizer_state(opt)
            chunk_losses = []
            for x, y in chunk_batches:
                loss, d = _TRAIN["mse"](model.forward(x), y)
                model.backward(d)
                _TRAIN["clip"](model.grads, C["max_norm"])
                opt.step(model.grads)
                chunk_losses.append(float(loss))
            losses += chunk_losses
            got = _ask(where, part, "training", [build_model, step_fn], {
                "seed": _seed(3000 + seed), "params": start, "state": state,
                "batches": [list(b) for b in chunk_batches],
                "max_norm": C["max_norm"]})
            _check_chunk(where, first, (start, chunk_losses, {
                k: v.copy() for k, v in model.params.items()}), got, dtype)
        xe, ye = _TRAIN["adding"](C["eval_n"], C["T"], _rng(3200 + seed), dtype=dtype)
        pv, yv = _compare.as_plain(model.forward(xe)), _compare.as_plain(ye)
        err = 0.0
        for a, b in zip(pv, yv):
            err += (a - b) * (a - b)
        err /= len(yv)
        if not err < C["threshold"]:      # NaN fails too
            marks = [fmt(losses[i], 30) for i in (0, C["steps"] // 2, C["steps"] - 1)]
            fail(f"{where}: your train_step makes the right steps, but after "
                 f"{C['steps']} of them the held-out MSE is {err:.4g}; it must be "
                 f"below {C['threshold']} (predicting 1.0 for every sequence gives "
                 f"about 0.167). The losses at steps 0, {C['steps'] // 2}, "
                 f"{C['steps'] - 1}: {marks}. Likely cause: build_model's choices "
                 f"(a learning rate too small or too large, a hidden size too small).")


# ---------------------------------------------------------------------------
