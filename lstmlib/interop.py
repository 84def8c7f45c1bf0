"""Conversion between lstmlib layers and ``torch.nn.RNN/LSTM/GRU``.

The parameter names and layouts are PyTorch's, so conversion is a copy of
``named_parameters()``; torch is imported only when these are called.
"""

import numpy as np

from .cells import CELL_TYPES
from .layers import RecurrentLayer

# lstmlib layer class <-> torch.nn class name, for every registered cell
# type that has a torch counterpart
_LAYERS = {cls.kind: cls for cls in RecurrentLayer.__subclasses__()}
_TORCH_NAMES = {spec.torch_class: kind for kind, spec in CELL_TYPES.items()
                if spec.torch_class is not None}


def _torch_names():
    return " or ".join(f"torch.nn.{n}" for n in _TORCH_NAMES)


def _kind_of_torch(module):
    import torch
    for name, kind in _TORCH_NAMES.items():
        if type(module) is getattr(torch.nn, name):
            return name, _LAYERS[kind]
    raise ValueError(f"module: expected a {_torch_names()}, received "
                     f"{type(module).__name__}")


def from_torch(module, backend="numpy"):
    """The lstmlib layer equal to ``module`` (same options, dropout between
    layers and training mode included, copied weights, same dtype), running
    on ``backend``."""
    name, cls = _kind_of_torch(module)
    if getattr(module, "proj_size", 0):
        raise ValueError(f"module: expected proj_size=0, received {module.proj_size}")
    params = {k: v.detach().cpu().numpy().copy() for k, v in module.named_parameters()}
    dtype = next(iter(params.values())).dtype
    kwargs = dict(num_layers=module.num_layers, bias=module.bias,
                  batch_first=module.batch_first,
                  bidirectional=module.bidirectional, dropout=module.dropout,
                  rng=np.random.default_rng(0), dtype=dtype, backend=backend)
    for option in CELL_TYPES[cls.kind].options:       # e.g. nonlinearity
        kwargs[option] = getattr(module, option)
    layer = cls(module.input_size, module.hidden_size, **kwargs)
    layer.load_state_dict(params)
    layer.train(module.training)
    return layer


def to_torch(layer):
    """The ``torch.nn`` module equal to ``layer`` (weights copied)."""
    import torch
    spec = CELL_TYPES.get(getattr(layer, "kind", None))
    if not isinstance(layer, RecurrentLayer) or spec.torch_class is None:
        raise ValueError(
            f"layer: expected an lstmlib layer with a torch counterpart "
            f"({', '.join(_LAYERS[k].__name__ for k in _TORCH_NAMES.values())}),"
            f" received {type(layer).__name__}")
    if layer.recurrent_dropout:
        raise ValueError(f"layer: expected recurrent_dropout=0 (torch's layers have no "
                         f"recurrent dropout), received {layer.recurrent_dropout}")
    name = spec.torch_class
    kwargs = dict(num_layers=layer.num_layers, bias=layer.bias,
                  batch_first=layer.batch_first, bidirectional=layer.bidirectional,
                  dropout=layer.dropout)
    for option in spec.options:
        kwargs[option] = layer.options[option]
    dtype = getattr(torch, layer.dtype.name)
    module = getattr(torch.nn, name)(layer.input_size, layer.hidden_size, **kwargs)
    module = module.to(dtype)
    with torch.no_grad():
        for k, p in module.named_parameters():
            p.copy_(torch.from_numpy(layer.params[k]))
    return module.train(layer.training)
