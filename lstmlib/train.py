"""A small training loop with a progress bar and a history for plots."""

from dataclasses import dataclass, field

from tqdm.auto import tqdm

from .optim import clip_grad_norm, global_norm


@dataclass
class History:
    """What happened at each step: lists of equal length (metric: at the
    steps where ``eval_fn`` ran, listed in ``eval_step``)."""

    step: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    grad_norm: list = field(default_factory=list)
    eval_step: list = field(default_factory=list)
    metric: list = field(default_factory=list)


def train(model, batches, loss_fn, optimizer, steps, clip=None, progress=True,
          eval_fn=None, eval_every=50):
    """Train ``model`` for ``steps`` optimiser steps.

    batches: a callable ``batches(step) -> (x, y)`` or ``(x, y, lengths)``,
        or an iterable of such tuples.
    loss_fn: ``loss_fn(pred, y) -> (loss, dpred)``.
    clip: the global gradient norm to clip to (None: no clipping).
    eval_fn: ``eval_fn(model) -> float`` run every ``eval_every`` steps and
        at the end.
    Returns a :class:`History`.
    """
    if steps < 1:
        raise ValueError(f"steps: expected a positive integer, received {steps!r}")
    source = batches if callable(batches) else iter(batches).__next__
    hist = History()
    bar = tqdm(range(steps), disable=not progress, desc="training", leave=False)
    for step in bar:
        batch = source(step) if callable(batches) else source()
        x, y = batch[0], batch[1]
        lengths = batch[2] if len(batch) > 2 else None
        pred = model.forward(x, lengths=lengths)
        loss, dpred = loss_fn(pred, y)
        model.backward(dpred)
        grads = model.grads
        norm = clip_grad_norm(grads, clip) if clip else global_norm(grads)
        optimizer.step(grads)
        hist.step.append(step)
        hist.loss.append(float(loss))
        hist.grad_norm.append(norm)
        if eval_fn is not None and ((step + 1) % eval_every == 0 or step + 1 == steps):
            hist.eval_step.append(step)
            hist.metric.append(float(eval_fn(model)))
        if progress and step % 10 == 0:
            bar.set_postfix(loss=f"{float(loss):.4g}")
    bar.close()
    return hist
