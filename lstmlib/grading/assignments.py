"""The one list of the course's graded assignments.

Read by the grader (which test cell grades which function, with which
check), by the tests (every assignment, every part, its points) and by the
book's exercises page (the table of exercises). Adding an assignment is one
entry here plus its source notebook in ``solutions/<name>/`` and its checks
(see book/instructor_guide.md, "Adding an assignment").

Each :class:`Part` names the notebook functions (or, for a measurement, the
variable) it grades, the check that judges them (a function of the
assignment's checks module ``lstmlib.grading.checks.<short>`` taking one
handle per name and ``which``), and its two test cells: the self-check
("visible") and the hidden tests, each with its points and what its cases
are about. The grader draws the numbers of every case afresh at each
grading; what a case tests (sizes, dtype, no bias...) stays as written.

What a graded kernel holds of lstmlib (:mod:`lstmlib.grading.kernel_edition`
builds it from these fields): ``hands_out``, ``{module: (names, ...)}``,
what the notebook hands out (its imports, what its non-graded cells and the
kernel's recipes use, the named tuples the grader sends); ``packages``, the
distributions its kernel needs besides ipykernel; ``pins``,
``{"module.function": {argument: value}}``, arguments removed from a
handed-out function and fixed to a value; ``withheld``, references the
edition never holds besides the parts' own functions (a module, or
``"module.name"``): a manifest that hands out something needing one of
them is refused.

What the delegation analysis reports (:mod:`lstmlib.grading.analysis`, for
the instructor's report; no grade depends on it): ``delegation``, a
:class:`Delegation` whose ``forbidden`` names lstmlib objects the graded
functions (those the parts hand to their checks) may not use,
``forbidden_modules`` the lstmlib modules none of whose contents they may
use, ``forbidden_keywords`` the keyword options of an allowed helper that
do the exercise's work, and ``references`` the lstmlib functions that
implement each graded function (the similarity report compares with them).
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Part:
    letter: str
    title: str                  # what the student implements
    functions: tuple            # notebook names handed to the check
    check: str                  # a function of lstmlib.grading.checks.<short>
    visible: tuple              # (grade_id, points, cases)
    hidden: tuple               # (grade_id, points, cases)

    @property
    def points(self) -> float:
        return float(self.visible[1] + self.hidden[1])


#: lstmlib's machinery that runs a whole recurrent layer from a cell: delegation
#: wherever the layer is what the assignment asks for
LAYER_MACHINERY = ("RecurrentLayer", "get_cell", "_cell_forward", "_cell_backward",
                   "from_torch")


@dataclasses.dataclass(frozen=True)
class Delegation:
    """What counts as delegation in an assignment (see the module's docstring).

    ``forbidden`` is matched against every component of an attribute path
    under lstmlib that is not a module; torch's recurrent modules are
    delegation in every assignment."""
    forbidden: tuple = ()
    forbidden_modules: tuple = ("lstmlib.kernels",)
    forbidden_keywords: tuple = ()      # ((function, keyword, its position), ...)
    references: tuple = ()              # ((graded function, "module:function"), ...)


@dataclasses.dataclass(frozen=True)
class Assignment:
    name: str
    notebook: str               # solutions/<name>/<notebook>.ipynb
    title: str
    chapter: tuple              # (title, book page)
    parts: tuple
    implement: str = ""         # for the book's table (default: the parts' titles)
    # the graded kernel's edition of lstmlib (see the module's docstring)
    hands_out: dict = dataclasses.field(default_factory=dict, hash=False)
    packages: tuple = ("numpy",)
    pins: dict = dataclasses.field(default_factory=dict, hash=False)
    withheld: tuple = ()
    # what the delegation analysis reports (see the module's docstring)
    delegation: Delegation = Delegation()

    @property
    def points(self) -> float:
        return sum(p.points for p in self.parts)

    @property
    def short(self) -> str:
        """The name without its number (``05_lstm_sequence`` ->
        ``lstm_sequence``): its checks module, ``checks/<short>.py``, and
        its pytest marker."""
        return self.name.split("_", 1)[1]

    def cells(self) -> dict:
        """{grade_id: (part, "visible" | "hidden", points)}"""
        out = {}
        for p in self.parts:
            out[p.visible[0]] = (p, "visible", p.visible[1])
            out[p.hidden[0]] = (p, "hidden", p.hidden[1])
        return out


def _part(letter, title, name, functions=None, check=None, vis=1, hid=2,
          vis_cases="", hid_cases="", cell=None):
    cell = cell or name
    return Part(letter, title, tuple(functions or (name,)), check or name,
                (f"test_{cell}_visible", vis, vis_cases),
                (f"test_{cell}_hidden", hid, hid_cases))


ASSIGNMENTS = {a.name: a for a in [
    Assignment("01_rnn_forward", "rnn_forward", "The RNN forward pass",
               ("Sequences", "01_sequences.md"), (
                   _part("A", "rnn_step_forward", "rnn_step_forward",
                         vis_cases="B=3, D=4, H=5, tanh",
                         hid_cases="B=1 ReLU; D=H; no biases; float32"),
                   _part("B", "rnn_forward", "rnn_forward",
                         vis_cases="T=5, B=3, tanh",
                         hid_cases="T=1; B=1 ReLU; no biases; float32")),
               withheld=("lstmlib.rnn",),
               delegation=Delegation(
                   forbidden=("rnn_step_forward", "rnn_forward", "rnn_step_backward",
                              "rnn_backward", "RNN", "RNN_CELL", *LAYER_MACHINERY),
                   references=(("rnn_step_forward", "lstmlib.rnn:rnn_step_forward"),
                               ("rnn_forward", "lstmlib.rnn:rnn_forward")))),
    Assignment("02_bptt", "bptt", "Backpropagation through time", ("BPTT", "02_bptt.md"), (
        _part("A", "rnn_step_backward", "rnn_step_backward",
              vis_cases="B=3, D=4, H=5, tanh", hid_cases="B=1 ReLU; D=H; no biases; float32"),
        _part("B", "rnn_backward", "rnn_backward", vis_cases="T=5, B=3",
              hid_cases="T=1; B=1 ReLU; no biases, dh_n=None; float32"),
        _part("C", "numerical_gradient", "numerical_gradient", hid=1,
              vis_cases="x (3, 4), df given", hid_cases="a 3-D x, df=None; another h")),
        # RNNCache: the caches the grader sends to rnn_backward
        hands_out={"lstmlib.rnn": ("RNNStepCache", "RNNCache", "rnn_forward",
                                   "rnn_step_forward"),
                   "lstmlib.gradcheck": ("rel_error",)},
        withheld=("lstmlib.gradcheck.check_layer_gradients",),
        delegation=Delegation(
            forbidden=("rnn_step_backward", "rnn_backward", "numerical_gradient",
                       "check_layer_gradients", "_activation_grad", "RNN", "RNN_CELL",
                       *LAYER_MACHINERY),
            references=(("rnn_step_backward", "lstmlib.rnn:rnn_step_backward"),
                        ("rnn_backward", "lstmlib.rnn:rnn_backward"),
                        ("numerical_gradient", "lstmlib.gradcheck:numerical_gradient")))),
    Assignment("03_gradient_norms", "gradient_norms", "Vanishing gradients, measured",
               ("Vanishing gradients", "03_vanishing_gradients.md"), (
                   _part("A", "input_gradient_norms", "input_gradient_norms",
                         vis_cases="an RNN", hid_cases="an LSTM; a ReLU RNN with T=1 and B=1"),
                   _part("B", "set_forget_bias", "set_forget_bias", hid=1,
                         vis_cases="value 3", hid_cases="H=1, a negative value; value 0"),
                   _part("C", "gradient_ratio", "gradient_ratio", hid=1,
                         vis_cases="T=30", hid_cases="other T, near, far"),
                   _part("D", "the experiment", "experiment",
                         functions=("input_gradient_norms", "set_forget_bias",
                                    "gradient_ratio"),
                         vis_cases="the conclusions, on the notebook's configuration",
                         hid_cases="the numbers, on a configuration the grader draws")),
               # the layers find their cells by the module's name (cells.get_cell)
               hands_out={"lstmlib": ("RNN", "LSTM"), "lstmlib.rnn": ("CELL",),
                          "lstmlib.lstm": ("CELL",)},
               packages=("numpy", "matplotlib"), withheld=("lstmlib.analysis",),
               delegation=Delegation(
                   forbidden=("input_gradient_norms",),
                   references=(("input_gradient_norms",
                                "lstmlib.analysis:input_gradient_norms"),))),
    Assignment("04_lstm_cell", "lstm_cell", "The LSTM cell", ("LSTM", "04_lstm.md"), (
        _part("A", "lstm_step_forward", "lstm_step_forward",
              vis_cases="B=3, D=4, H=5", hid_cases="B=1; D=H; no biases; float32"),
        _part("B", "lstm_step_backward", "lstm_step_backward",
              vis_cases="B=3, D=4, H=5", hid_cases="B=1; D=H; no biases; float32")),
        hands_out={"lstmlib.activations": ("sigmoid",), "lstmlib.lstm": ("LSTMStepCache",),
                   "lstmlib.gradcheck": ("numerical_gradient", "rel_error")},
        withheld=("lstmlib.lstm.lstm_forward", "lstmlib.lstm.lstm_backward"),
        delegation=Delegation(
            forbidden=("lstm_step_forward", "lstm_step_backward", "lstm_forward",
                       "lstm_backward", "_local_derivatives", "LSTM", "LSTM_CELL",
                       *LAYER_MACHINERY),
            references=(("lstm_step_forward", "lstmlib.lstm:lstm_step_forward"),
                        ("lstm_step_backward", "lstmlib.lstm:lstm_step_backward")))),
    Assignment("05_lstm_sequence", "lstm_sequence", "The LSTM over a sequence",
               ("LSTM", "04_lstm.md"), (
                   _part("A", "lstm_forward", "lstm_forward", vis_cases="T=5, B=3",
                         hid_cases="T=1; B=1; no biases; float32"),
                   _part("B", "lstm_backward", "lstm_backward", vis_cases="T=5, B=3",
                         hid_cases="T=1; B=1; no biases with dh_n=dc_n=None; float32")),
               hands_out={"lstmlib.lstm": ("lstm_step_forward", "lstm_step_backward",
                                           "LSTMCache", "LSTMStepCache")},
               withheld=("lstmlib.bidirectional", "lstmlib.lstm.CELL"),
               delegation=Delegation(
                   forbidden=("lstm_forward", "lstm_backward", "_local_derivatives", "LSTM",
                              "LSTM_CELL", *LAYER_MACHINERY),
                   forbidden_modules=("lstmlib.kernels", "lstmlib.bidirectional"),
                   references=(("lstm_forward", "lstmlib.lstm:lstm_forward"),
                               ("lstm_backward", "lstmlib.lstm:lstm_backward")))),
    Assignment("06_gru", "gru", "The GRU cell", ("GRU", "05_gru.md"), (
        _part("A", "gru_step_forward", "gru_step_forward",
              vis_cases="B=3, D=4, H=5", hid_cases="B=1; D=H; no biases; float32"),
        _part("B", "gru_step_backward", "gru_step_backward",
              vis_cases="B=3, D=4, H=5", hid_cases="B=1; D=H; no biases; float32")),
        hands_out={"lstmlib.activations": ("sigmoid",), "lstmlib.gru": ("GRUStepCache",)},
        withheld=("lstmlib.gru.gru_forward", "lstmlib.gru.gru_backward"),
        delegation=Delegation(
            forbidden=("gru_step_forward", "gru_step_backward", "gru_forward",
                       "gru_backward", "GRU", "GRU_CELL", *LAYER_MACHINERY),
            references=(("gru_step_forward", "lstmlib.gru:gru_step_forward"),
                        ("gru_step_backward", "lstmlib.gru:gru_step_backward")))),
    Assignment("07_bidirectional", "bidirectional", "A bidirectional LSTM",
               ("Bidirectional RNNs", "06_bidirectional.md"), (
                   _part("A", "reverse_padded", "reverse_padded", hid=1,
                         vis_cases="T=5, B=3", hid_cases="T=1; B=1; float32"),
                   _part("B", "bidirectional_lstm (output)", "bidirectional_output",
                         functions=("bidirectional_lstm",), vis_cases="T=5, B=3, padded",
                         hid_cases="T=1; B=1; no padding, no biases; float32"),
                   _part("C", "bidirectional_lstm (final states)", "bidirectional_states",
                         functions=("bidirectional_lstm",), hid=1,
                         vis_cases="T=5, B=3, padded",
                         hid_cases="T=1; B=1; no padding, no biases; float32")),
               "`reverse_padded`, `bidirectional_lstm` (output, final states)",
               # with reverse=True, lstm_forward walks the backward direction
               # the exercise asks for: the edition's takes no reverse
               hands_out={"lstmlib.lstm": ("lstm_forward",)},
               pins={"lstmlib.lstm.lstm_forward": {"reverse": False}},
               withheld=("lstmlib.bidirectional", "lstmlib.layers"),
               delegation=Delegation(
                   forbidden=("bidirectional_forward", "bidirectional_backward", "LSTM",
                              "GRU", "RNN", *LAYER_MACHINERY),
                   forbidden_modules=("lstmlib.kernels", "lstmlib.bidirectional"),
                   forbidden_keywords=(("lstm_forward", "reverse", 8),),
                   references=(("bidirectional_lstm",
                                "lstmlib.bidirectional:bidirectional_forward"),))),
    Assignment("08_training", "adding_problem", "Training on the adding problem",
               ("Training", "07_training.md"), (
                   _part("A", "mse", "mse", hid=1, vis_cases="pred (4, 1)",
                         hid_cases="3-D predictions; float32"),
                   _part("B", "clip_grad_norm", "clip_grad_norm", hid=1,
                         vis_cases="a norm above max_norm",
                         hid_cases="a norm below max_norm; three arrays"),
                   _part("C", "train_step", "train_step", hid=1, vis_cases="one step",
                         hid_cases="several steps with clipping active; float32"),
                   _part("D", "build_model", "training",
                         functions=("build_model", "train_step"),
                         vis_cases="300 steps from one seed",
                         hid_cases="the same from two other seeds")),
               hands_out={"lstmlib": ("SequenceModel", "Linear", "LSTM", "GRU", "RNN",
                                      "Adam", "SGD"),
                          "lstmlib.optim": ("Adam", "SGD"),
                          "lstmlib.data": ("adding_problem",),
                          "lstmlib.rnn": ("CELL",), "lstmlib.lstm": ("CELL",),
                          "lstmlib.gru": ("CELL",)},
               withheld=("lstmlib.losses.mse", "lstmlib.optim.clip_grad_norm",
                         "lstmlib.optim.global_norm", "lstmlib.train", "lstmlib.tbptt"),
               delegation=Delegation(
                   forbidden=("mse", "clip_grad_norm", "global_norm", "train"),
                   references=(("mse", "lstmlib.losses:mse"),
                               ("clip_grad_norm", "lstmlib.optim:clip_grad_norm"),
                               ("clip_grad_norm", "lstmlib.optim:global_norm")))),
    Assignment("09_performance", "kernels", "Numba and CUDA kernels",
               ("Numba and CUDA", "08_performance.md"), (
                   _part("A", "lstm_step_fused (Numba)", "fused_step",
                         functions=("lstm_step_fused",), check="fused_step",
                         cell="lstm_step_fused", vis_cases="B=2, D=3, H=4",
                         hid_cases="B=1, D=H=1; float32; zero bias"),
                   _part("B", "lstm_gates_kernel (CUDA)", "gates_kernel",
                         functions=("lstm_gates_kernel",), check="gates_kernel",
                         cell="lstm_gates_kernel", vis_cases="B=4, H=8",
                         hid_cases="B and H not multiples of the block; float32")),
               "`lstm_step_fused` (Numba, CPU), `lstm_gates_kernel` (CUDA)",
               hands_out={"lstmlib.lstm": ("lstm_step_forward",)},
               packages=("numpy", "numba"), withheld=("lstmlib.lstm.lstm_forward",),
               # nothing of lstmlib's (its kernels included) belongs in a kernel the
               # student compiles; the self-check helpers stay allowed
               delegation=Delegation(
                   forbidden=("lstm_step_forward", "lstm_forward"),
                   forbidden_modules=("lstmlib",),
                   references=(("lstm_step_fused",
                                "lstmlib.kernels.numba_cpu:lstm_gates_forward"),
                               ("lstm_step_fused",
                                "lstmlib.kernels.numba_cpu:_lstm_forward_row"),
                               ("lstm_gates_kernel", "lstmlib.kernels.cuda:lstm_gates_kernel"),
                               ("lstm_gates_kernel", "lstmlib.kernels.cuda:_lstm_update")))),
    Assignment("10_attention", "attention", "Additive attention",
               ("Sequence to sequence with attention", "10_seq2seq_attention.md"), (
                   _part("A", "attention_forward", "attention_forward",
                         vis_cases="S=5, B=3, H_q=4, H_k=6, A=7",
                         hid_cases="padding; S=1, B=1; float32; large scores"),
                   _part("B", "attention_backward", "attention_backward",
                         vis_cases="S=5, B=3, H_q=4, H_k=6, A=7",
                         hid_cases="padding; S=1, B=1; float32")),
               "`attention_forward` (with padding), `attention_backward`",
               hands_out={"lstmlib.attention": ("AttentionCache",)},
               withheld=("lstmlib.attention.softmax", "lstmlib.seq2seq"),
               delegation=Delegation(
                   forbidden=("attention_forward", "attention_backward", "softmax"),
                   references=(("attention_forward", "lstmlib.attention:attention_forward"),
                               ("attention_backward",
                                "lstmlib.attention:attention_backward")))),
    Assignment("11_tbptt", "tbptt", "Truncated BPTT",
               ("Training recurrent networks in practice", "09_practice.md"), (
                   _part("A", "tbptt_windows", "tbptt_windows", hid=1,
                         vis_cases="T a multiple of k1, k2 > k1",
                         hid_cases="last chunk shorter; k2 == k1; k2 >= T; T=1; k1=1"),
                   _part("B", "truncated_bptt", "truncated_bptt",
                         vis_cases="T=10, B=3, k1=3, k2=5",
                         hid_cases="k1=k2, B=1 ReLU; T=1; k2 >= T (full BPTT), no "
                                   "biases; float32")),
               "`tbptt_windows`, `truncated_bptt` (an RNN's gradients, window by window)",
               # the RNN's forward and backward passes of exercises 1 and 2
               hands_out={"lstmlib.rnn": ("rnn_forward", "rnn_backward")},
               withheld=("lstmlib.tbptt",),
               delegation=Delegation(
                   forbidden=("tbptt_windows", "tbptt_chunks", "tbptt_gradients",
                              "train_tbptt", *LAYER_MACHINERY),
                   references=(("tbptt_windows", "lstmlib.tbptt:tbptt_windows"),
                               ("truncated_bptt", "lstmlib.tbptt:tbptt_gradients")))),
    Assignment("12_parallel_scan", "parallel_scan", "The parallel scan",
               ("Where recurrent networks went next", "11_beyond.md"), (
                   _part("A", "linear_scan", "linear_scan", vis_cases="T=6, B=3, H=4",
                         hid_cases="T=1; T=33; T=16, B=1, H=1; float32"),
                   _part("B", "linear_scan_backward", "linear_scan_backward",
                         vis_cases="T=6, B=3, H=4", hid_cases="T=1; T=33; B=1, float32"),
                   _part("C", "mingru_forward", "mingru_forward", hid=1,
                         vis_cases="T=6, B=3, D=4, H=5",
                         hid_cases="T=1, B=1; D=H; float32")),
               "`linear_scan`, `linear_scan_backward` (by the scan), `mingru_forward`",
               hands_out={"lstmlib.activations": ("sigmoid",)},
               withheld=("lstmlib.mingru",),
               delegation=Delegation(
                   forbidden=("linear_scan_sequential", "linear_scan_parallel",
                              "linear_scan_backward", "mingru_forward", "mingru_backward"),
                   forbidden_modules=("lstmlib.kernels", "lstmlib.mingru"),
                   references=(("linear_scan", "lstmlib.mingru:linear_scan_parallel"),
                               ("linear_scan_backward",
                                "lstmlib.mingru:linear_scan_backward"),
                               ("mingru_forward", "lstmlib.mingru:mingru_forward")))),
]}


def find(assignment: str) -> Assignment:
    try:
        return ASSIGNMENTS[assignment]
    except KeyError:
        raise ValueError(f"assignment: expected one of {sorted(ASSIGNMENTS)}, "
                         f"received {assignment!r}") from None


def markdown_table() -> str:
    """The table of book/exercises.md."""
    rows = ["| Exercise | Chapter | You implement | Parts | Points |",
            "|---|---|---|---|---|"]
    for n, a in enumerate(ASSIGNMENTS.values(), start=1):
        implement = a.implement or ", ".join(
            f"`{p.title}`" if " " not in p.title else p.title for p in a.parts)
        rows.append(f"| [{n}. {a.title}](../exercises/{a.name}/{a.notebook}.ipynb) | "
                    f"[{a.chapter[0]}]({a.chapter[1]}) | {implement} | {len(a.parts)} | "
                    f"{a.points:g} |")
    return "\n".join(rows)
