"""pbxguard: screen the first two seconds of a phone call."""

import os
import platform

__version__ = "0.1.0"

# OpenBLAS picks its kernels by CPU, and their rounding differs: an AVX-512 machine's (SkylakeX) and an AVX2
# machine's (Haswell, Zen) features differ in the last bits, and the 2nd and 3rd spectral bases of a noise-like
# opening (near-equal eigenvalues) turn with those bits, so the same corpus trained into a different model. One
# kernel everywhere on x86-64 (as MKL_CBWR=AVX2 does for MKL): the shipped model was trained with it, and a
# daemon computes the features it was trained on. Set before numpy loads OpenBLAS, so here, first.
BLAS_CORETYPE = "Haswell"


def _cpu_has(*flags: str) -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            line = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return set(flags) <= set(line.split())


if platform.machine() in ("x86_64", "AMD64") and _cpu_has("avx2", "fma"):
    os.environ["OPENBLAS_CORETYPE"] = BLAS_CORETYPE
