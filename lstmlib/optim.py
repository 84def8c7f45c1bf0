"""Optimisers that update a dict of parameter arrays in place, and gradient
clipping by global norm (Pascanu et al. 2013)."""

import numpy as np


def global_norm(grads):
    """sqrt of the sum of squares of every gradient entry."""
    return float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))


def clip_grad_norm(grads, max_norm):
    """Scale all gradients in place so that their global norm is at most
    ``max_norm``; return the norm before clipping."""
    if not max_norm > 0:
        raise ValueError(f"max_norm: expected a positive number, received {max_norm!r}")
    norm = global_norm(grads)
    if norm > max_norm:
        scale = max_norm / (norm + 1e-6)       # the epsilon PyTorch uses
        for g in grads.values():
            g *= scale
    return norm


class _Optimizer:
    def __init__(self, params, lr):
        if not lr > 0:
            raise ValueError(f"lr: expected a positive learning rate, received {lr!r}")
        self.params, self.lr = params, lr

    def _check(self, grads):
        if set(grads) != set(self.params):
            raise ValueError(f"grads: expected keys {sorted(self.params)}, "
                             f"received {sorted(grads)}")


class SGD(_Optimizer):
    """p <- p - lr * v with v <- momentum * v + g (PyTorch's convention)."""

    def __init__(self, params, lr, momentum=0.0):
        super().__init__(params, lr)
        self.momentum = momentum
        self.velocity = {k: np.zeros_like(p) for k, p in params.items()}

    def step(self, grads):
        self._check(grads)
        for k, p in self.params.items():
            v = self.velocity[k]
            v *= self.momentum
            v += grads[k]
            p -= self.lr * v


class Adam(_Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr)
        self.b1, self.b2 = betas
        self.eps = eps
        self.t = 0
        self.m = {k: np.zeros_like(p) for k, p in params.items()}
        self.v = {k: np.zeros_like(p) for k, p in params.items()}

    def step(self, grads):
        self._check(grads)
        self.t += 1
        c1 = 1 - self.b1 ** self.t
        c2 = 1 - self.b2 ** self.t
        for k, p in self.params.items():
            g = grads[k]
            m, v = self.m[k], self.v[k]
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            p -= self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), as
    ``torch.optim.AdamW``: p <- p - lr * weight_decay * p, then Adam's step.

    Unlike an L2 term added to the loss (whose gradient Adam would rescale
    per parameter), the decay shrinks every weight by the same factor.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                 weight_decay=1e-2):
        super().__init__(params, lr, betas, eps)
        if not weight_decay >= 0:
            raise ValueError("weight_decay: expected a non-negative number, "
                             f"received {weight_decay!r}")
        self.weight_decay = weight_decay

    def step(self, grads):
        self._check(grads)
        for p in self.params.values():
            p *= 1 - self.lr * self.weight_decay     # decoupled decay
        super().step(grads)
