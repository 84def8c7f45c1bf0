"""lstmlib: recurrent networks from scratch, exact to PyTorch.

Shape legend used everywhere: T time steps, B batch, D input features,
H hidden units, G gates (RNN 1; LSTM 4 in the order i, f, g, o; GRU 3 in
the order r, z, n). Sequences are time-major, (T, B, D).

Modules, one per idea: ``rnn``, ``lstm``, ``gru``, ``peephole`` (step and
sequence functions, forward and backward: the reference every backend is
checked against), ``cells`` (the registry of cell types and backends),
``bidirectional`` (wraps any cell), ``layers`` (``RNN``, ``LSTM``, ``GRU``,
``PeepholeLSTM`` with torch's arguments and parameter names), ``interop``
(``from_torch``, ``to_torch``), ``kernels`` (the numpy-fast, Numba and CUDA
backends), and the training kit: ``losses``, ``optim``, ``train``,
``gradcheck``, ``analysis``, ``data``.
Training in practice: ``tbptt`` (truncated BPTT over long sequences),
``regularization`` (dropout, recurrent dropout, the train/eval switch,
early stopping), ``init`` (orthogonal and forget-gate initialisation),
``layernorm`` (the layer-normalised LSTM); real series in ``data.series``.
Beyond single layers: ``attention`` (additive attention, forward and
backward), ``seq2seq`` (an LSTM encoder-decoder, with or without attention)
and ``mingru`` (minGRU by a sequential loop or a parallel scan).
"""

from . import (activations, analysis, attention, data, gradcheck, losses, mingru,
               optim, seq2seq)
from . import init, layernorm, regularization, tbptt
from .gru import gru_backward, gru_forward, gru_step_backward, gru_step_forward
from .interop import from_torch, to_torch
from .cells import BACKENDS, CELL_TYPES, get_cell
from .layers import GRU, LSTM, RNN, PeepholeLSTM, RecurrentLayer
from .lstm import lstm_backward, lstm_forward, lstm_step_backward, lstm_step_forward
from .model import Embedding, EmbeddedRNN, Linear, SequenceModel
from .optim import SGD, Adam, AdamW, clip_grad_norm
from .rnn import rnn_backward, rnn_forward, rnn_step_backward, rnn_step_forward
from .regularization import Dropout, EarlyStopping, Sequential, set_training
from .tbptt import tbptt_chunks, train_tbptt
from .train import History, train

__version__ = "0.1.0"

__all__ = [
    "RNN", "LSTM", "GRU", "PeepholeLSTM", "RecurrentLayer", "get_cell",
    "BACKENDS", "CELL_TYPES", "from_torch", "to_torch",
    "Embedding", "EmbeddedRNN", "Linear", "SequenceModel", "SGD", "Adam", "AdamW",
    "clip_grad_norm", "History", "train",
    "Dropout", "Sequential", "set_training", "EarlyStopping", "tbptt_chunks", "train_tbptt",
    "rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward",
    "lstm_step_forward", "lstm_step_backward", "lstm_forward", "lstm_backward",
    "gru_step_forward", "gru_step_backward", "gru_forward", "gru_backward",
    "activations", "analysis", "data", "gradcheck", "losses", "optim",
    "attention", "seq2seq", "mingru",
    "init", "layernorm", "regularization", "tbptt",
]
