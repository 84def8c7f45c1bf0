r"""tanh that LLVM can vectorise, accurate to a few ulp, in both precisions.

Numba compiles ``math.tanh`` to a call into the C library: one element per
call, while numpy's own ``np.tanh`` runs 8 or 16 elements per vector
instruction on AVX-512 (the performance chapter measures both). A call
inside a loop stops LLVM from vectorising the loop. Intel's SVML library
would give Numba vector versions of these calls; without it we write the
functions ourselves out of multiplications, additions, one division and
comparisons, which vectorise.

The formulas are the Cephes library's (S. L. Moshier), the same ones most C
libraries descend from:

* :math:`|x| < 0.625`: an odd rational (float64) or polynomial (float32)
  approximation around 0, where :math:`1 - 2/(e^{2|x|} + 1)` would cancel;
* otherwise :math:`\tanh |x| = 1 - 2 / (e^{2|x|} + 1)` with
  :math:`e^{y} = 2^n e^{r}`, :math:`n = \mathrm{round}(y / \ln 2)`,
  :math:`|r| \le \ln 2 / 2` (Cody and Waite's two-part :math:`\ln 2`), and a
  Padé form (float64) or a polynomial (float32) for :math:`e^r`. In
  float64 :math:`2^n` is the integer ``1 << n`` converted to a float (exact:
  :math:`n \le 58`), a vector shift and one conversion; in float32 it is
  built by multiplying exact powers of two (five selects).

Both branches are computed and one is selected (a branch would stop the
vectorisation), and divisions, the slowest vector instruction, are merged:
``tanh64`` divides once, ``tanh32`` once in its large branch only.

:func:`tanh64` works in float64 (float32 inputs are widened); :func:`tanh32`
works in float32 throughout, twice as many lanes per instruction and cheaper
divisions, like numpy's own float32 ``tanh``. :func:`tanh` picks by the
argument's type. Errors measured against ``np.tanh`` in float64: a few ulp of
the respective precision (see ``tests/kernels/test_kernels_numba.py``). That is
"exact" for this course: the reference tolerance is 1e-10 (float64) and 1e-5
(float32), and the order of a matrix product's sum already moves results by
more.
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

_OPTS = dict(cache=True, error_model="numpy")
_F = np.float32


@njit(**_OPTS)
def _pow2(n, e, powers):
    """e * 2^n for an integral float 0 <= n < 2 * powers[0][0]."""
    for v, pw in powers:
        take = n >= v
        n = n - v if take else n
        e = e * pw if take else e
    return e


_POW2_32 = ((_F(16.0), _F(65536.0)), (_F(8.0), _F(256.0)),
            (_F(4.0), _F(16.0)), (_F(2.0), _F(4.0)), (_F(1.0), _F(2.0)))


@njit(**_OPTS)
def tanh64(x):
    """tanh(x) in float64 arithmetic (float32 x is widened), vectorisable."""
    x = float(x)
    ax = min(abs(x), 20.0)                  # tanh(20) == 1.0 in float64
    s = ax * ax
    # near 0: x + x^3 P(x^2) / Q(x^2)
    ps = (-9.64399179425052238628e-1 * s - 9.92877231001918586564e1) * s \
        - 1.61468768441708447952e3
    qs = ((s + 1.12811678491632931402e2) * s + 2.23548839060100448583e3) * s \
        + 4.84406305325125486048e3
    # elsewhere: 1 - 2 / (e^{2|x|} + 1), e^{2|x|} = 2^n (q + p) / (q - p)
    y = 2.0 * ax
    ni = int(y * 1.4426950408889634 + 0.5)           # round(y / ln 2) <= 58
    n = float(ni)
    r = y - n * 6.93145751953125e-1 - n * 1.42860682030941723212e-6
    rr = r * r
    p = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr
             + 9.99999999999999999910e-1)
    q = ((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr
         + 2.27265548208155028766e-1) * rr + 2.00000000000000000009e0
    # so 2 / (e + 1) = 2 (q - p) / (2^n (q + p) + (q - p)); one division
    # serves both branches
    den_large = (q + p) * float(1 << ni) + (q - p)
    num_large = 2.0 * (q - p)
    num_small = ax * s * ps
    small = ax < 0.625
    num = num_small if small else num_large
    den = qs if small else den_large
    d = num / den
    t = ax + d if small else 1.0 - d
    return -t if x < 0.0 else t


@njit(**_OPTS)
def tanh32(x):
    """tanh(x) in float32 arithmetic (Cephes tanhf and expf), vectorisable."""
    ax = min(abs(x), _F(9.1))               # tanh(9.1) == 1.0 in float32
    s = ax * ax
    # near 0: x + x^3 P(x^2)
    small = ((((_F(-5.70498872745e-3) * s + _F(2.06390887954e-2)) * s
               - _F(5.37397155531e-2)) * s + _F(1.33314422036e-1)) * s
             - _F(3.33332819422e-1)) * s * ax + ax
    # elsewhere: 1 - 2 / (e^{2|x|} + 1), e^y = 2^n e^r
    y = _F(2.0) * ax
    n = _F(int(y * _F(1.44269504088896341) + _F(0.5)))
    r = y - n * _F(0.693359375) - n * _F(-2.12194440e-4)
    e = (((((_F(1.9875691500e-4) * r + _F(1.3981999507e-3)) * r
            + _F(8.3334519073e-3)) * r + _F(4.1665795894e-2)) * r
          + _F(1.6666665459e-1)) * r + _F(5.0000001201e-1)) * (r * r) \
        + r + _F(1.0)
    large = _F(1.0) - _F(2.0) / (_pow2(n, e, _POW2_32) + _F(1.0))
    t = small if ax < _F(0.625) else large
    return -t if x < _F(0.0) else t


def tanh(x):
    """tanh in the argument's own precision: :func:`tanh32` for float32,
    :func:`tanh64` otherwise (one name for kernels written for both)."""
    return tanh32(x) if isinstance(x, np.float32) else tanh64(x)


@overload(tanh, jit_options=_OPTS)
def _tanh_by_type(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return lambda x: tanh32(x)
    return lambda x: tanh64(x)
