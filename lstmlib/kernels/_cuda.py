"""The one place in lstmlib that imports ``numba.cuda``.

Status (2026): numba 0.68 still ships ``numba.cuda`` but deprecates it in
favour of the separate ``numba-cuda`` package (NVIDIA's), whose 0.30.x line is
in maintenance mode; new work goes to ``numba-cuda-mlir``, which has no
simulator. ``from numba import cuda`` is the import that works everywhere we
need it: with plain numba (simulator on a CPU, real GPUs), and with
``numba-cuda`` installed, which takes over the same ``numba.cuda`` name.
Should the name move again, this file is the only one to change.

``NUMBA_ENABLE_CUDASIM=1`` must be set before this module is first imported
to get the simulator (each CUDA thread becomes a Python thread: tiny sizes
only). Known simulator gaps: ``grid.sync()`` only synchronises one block
(blocks run one after another), ``threadfence`` does nothing, warp shuffles
are missing.
"""

import os
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from numba import cuda  # noqa: E402

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


def available():
    """True when CUDA kernels can run here (a GPU, or the simulator)."""
    return SIMULATOR or cuda.is_available()


def gpu_available():
    """True only with a real GPU (the simulator does not count)."""
    return (not SIMULATOR) and cuda.is_available()


def require():
    """Raise a clear error when neither a GPU nor the simulator is there."""
    if not available():
        raise RuntimeError(
            "backend 'cuda': no CUDA GPU was found and NUMBA_ENABLE_CUDASIM "
            "is not set; set NUMBA_ENABLE_CUDASIM=1 before importing lstmlib "
            "to run the kernels in the simulator (tiny sizes only)")


def device_info():
    """Name, driver version and compute capability of the current GPU."""
    if not gpu_available():
        return {"gpu": "simulator" if SIMULATOR else None}
    dev = cuda.get_current_device()
    info = {"gpu": dev.name.decode() if isinstance(dev.name, bytes)
            else str(dev.name),
            "compute_capability": ".".join(map(str, dev.compute_capability)),
            "multiprocessors": dev.MULTIPROCESSOR_COUNT}
    try:
        from numba.cuda.cudadrv import driver
        info["driver_version"] = driver.driver.get_version()
    except Exception as exc:              # old or renamed internals
        info["driver_version"] = f"unknown ({type(exc).__name__})"
    try:
        info["runtime_version"] = cuda.runtime.get_version()
    except Exception as exc:
        info["runtime_version"] = f"unknown ({type(exc).__name__})"
    return info
