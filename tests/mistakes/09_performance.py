"""Typical mistakes in 09_performance (6 points).

Test cells: Part A (lstm_step_fused, a Numba @njit step) visible 1 (B=2,
D=3, H=4, float64; compiled in nopython mode) + hidden 2 (B=1, D=H=1;
float32; zero bias); Part B (lstm_gates_kernel, a CUDA kernel run in the
simulator with 4 x 8 threads per block) visible 1 (B=4, H=8: whole blocks)
+ hidden 2 (B=3, H=5: partial blocks; float32).
"""

from tests.mistakes import Mistake

NOTEBOOK = "kernels"
FULL_SCORE = 6.0

MISTAKES = [
    Mistake("plain Python function (no @njit)", "lstm_step_fused",
            "@njit\ndef lstm_step_fused", "def lstm_step_fused", 3.0,
            "the values are right but both Part A cells refuse a function "
            "that Numba does not compile; Part B untouched (3)"),
    Mistake("compiled in object mode", "lstm_step_fused",
            "@njit\ndef lstm_step_fused",
            "import numba\n\n\n@numba.jit(forceobj=True)\ndef lstm_step_fused",
            3.0,
            "object mode is a Python fallback: both Part A cells fail; "
            "Part B untouched (3)"),
    Mistake("forget and input gates swapped in the cell update",
            "lstm_step_fused",
            "c[b, k] = f * c_prev[b, k] + i * g",
            "c[b, k] = i * c_prev[b, k] + f * g", 3.0,
            "c and h wrong in every case: both Part A cells fail"),
    Mistake("h from the previous cell state", "lstm_step_fused",
            "h[b, k] = o * math.tanh(c[b, k])",
            "h[b, k] = o * math.tanh(c_prev[b, k])", 3.0,
            "h wrong in every case: both Part A cells fail"),
    Mistake("float32 upcast (h allocated as float64)", "lstm_step_fused",
            "h = np.empty_like(h_prev)", "h = np.empty((B, H))", 4.0,
            "float64 visible case passes (1); the hidden float32 case gets "
            "a float64 h (fail); Part B untouched (3)"),
    Mistake("recurrent product over the first hidden unit only",
            "lstm_step_fused",
            "for m in range(H):", "for m in range(1):", 3.0,
            "the visible case (H=4) fails; the hidden cell passes its H=1 "
            "case but fails the others"),
    Mistake("no bounds check in the kernel", "lstm_gates_kernel",
            "    if b < B and k < H:\n", "    if True:\n", 4.0,
            "Part A untouched (3); visible B=4, H=8 fills whole blocks "
            "(pass, 1); hidden B=3, H=5 indexes outside the arrays (fail)"),
    Mistake("input and forget gates read from each other's block",
            "lstm_gates_kernel",
            "i = 1.0 / (1.0 + math.exp(-a[b, k]))\n"
            "        f = 1.0 / (1.0 + math.exp(-a[b, H + k]))",
            "i = 1.0 / (1.0 + math.exp(-a[b, H + k]))\n"
            "        f = 1.0 / (1.0 + math.exp(-a[b, k]))", 3.0,
            "Part A untouched (3); every kernel case fails"),
    Mistake("thread indices swapped (k, b = cuda.grid(2))", "lstm_gates_kernel",
            "b, k = cuda.grid(2)", "k, b = cuda.grid(2)", 3.0,
            "Part A untouched (3); the first grid axis spans B, so units "
            "k >= 4 are never written: both Part B cells fail"),
    Mistake("tanh for the output gate", "lstm_gates_kernel",
            "o = 1.0 / (1.0 + math.exp(-a[b, 3 * H + k]))",
            "o = math.tanh(a[b, 3 * H + k])", 3.0,
            "Part A untouched (3); h wrong in every kernel case"),
]
