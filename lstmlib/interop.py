"""Conversion between lstmlib layers and ``torch.nn.RNN/LSTM/GRU``.

The parameter names and layouts are PyTorch's, so conversion is a copy of
``named_parameters()``; torch is imported only when these are called.
"""

import numpy as np

from .layers import GRU, LSTM, RNN

_KINDS = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}


def _kind_of_torch(module):
    import torch
    for name, cls in _KINDS.items():
        if type(module) is getattr(torch.nn, name):
            return name, cls
    raise ValueError("module: expected a torch.nn.RNN, torch.nn.LSTM or "
                     f"torch.nn.GRU, received {type(module).__name__}")


def from_torch(module, backend="numpy"):
    """The lstmlib layer equal to ``module`` (same options, copied weights,
    same dtype), running on ``backend``."""
    name, cls = _kind_of_torch(module)
    if getattr(module, "proj_size", 0):
        raise ValueError(f"module: expected proj_size=0, received {module.proj_size}")
    if module.dropout:
        raise ValueError(f"module: expected dropout=0, received {module.dropout}")
    params = {k: v.detach().cpu().numpy().copy() for k, v in module.named_parameters()}
    dtype = next(iter(params.values())).dtype
    kwargs = dict(num_layers=module.num_layers, bias=module.bias,
                  batch_first=module.batch_first,
                  bidirectional=module.bidirectional,
                  rng=np.random.default_rng(0), dtype=dtype, backend=backend)
    if name == "RNN":
        kwargs["nonlinearity"] = module.nonlinearity
    layer = cls(module.input_size, module.hidden_size, **kwargs)
    layer.load_state_dict(params)
    return layer


def to_torch(layer):
    """The ``torch.nn`` module equal to ``layer`` (weights copied)."""
    import torch
    name = {RNN: "RNN", LSTM: "LSTM", GRU: "GRU"}.get(type(layer))
    if name is None:
        raise ValueError("layer: expected an lstmlib RNN, LSTM or GRU, "
                         f"received {type(layer).__name__}")
    kwargs = dict(num_layers=layer.num_layers, bias=layer.bias,
                  batch_first=layer.batch_first, bidirectional=layer.bidirectional)
    if name == "RNN":
        kwargs["nonlinearity"] = layer.nonlinearity
    dtype = getattr(torch, layer.dtype.name)
    module = getattr(torch.nn, name)(layer.input_size, layer.hidden_size, **kwargs)
    module = module.to(dtype)
    with torch.no_grad():
        for k, p in module.named_parameters():
            p.copy_(torch.from_numpy(layer.params[k]))
    return module
