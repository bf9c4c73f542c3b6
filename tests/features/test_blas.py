"""Features do not depend on the CPU's OpenBLAS kernel: pbxguard pins one on import (an AVX-512 machine's
kernel once made a different model from the same corpus)."""

import subprocess
import sys

import numpy as np

from pbxguard.doctor import check_blas

# Noise openings at several levels; numpy is imported only by pbxguard, as in the commands.
FEATURES = """
import sys
import pbxguard.features.analysis as analysis
import numpy as np
rng = np.random.default_rng(5)
rows = [analysis.analyse(np.round(rng.normal(0, 3 + 30 * k, 16000)).astype(np.int16)).deadair_vector for k in range(8)]
sys.stdout.buffer.write(np.stack(rows).tobytes())
"""


def features_with_kernel(coretype: str) -> np.ndarray:
    out = subprocess.run([sys.executable, "-c", FEATURES], env={"OPENBLAS_CORETYPE": coretype, "PATH": "/usr/bin:/bin"},
                         capture_output=True, check=True).stdout
    return np.frombuffer(out, dtype=np.float64)


def test_the_same_features_whatever_kernel_the_environment_asks_for():
    # SkylakeX (AVX-512) and Zen (AVX2) round differently: unpinned, these differ in the last bits.
    assert np.array_equal(features_with_kernel("SkylakeX"), features_with_kernel("Zen"))


def test_doctor_says_which_kernel_runs():
    finding = check_blas()
    assert finding.ok and finding.said == "OpenBLAS kernel Haswell, the one the shipped model was trained with", finding.line()
