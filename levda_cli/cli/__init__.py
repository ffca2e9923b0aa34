"""The command line: parsing, rich output on stderr, JSON on stdout, exit codes. No numerics."""

import os

# Host BLAS: levda's numerical work runs in XLA; numpy and scipy (whose LAPACK JAX's CPU kernels use)
# only do small host-side algebra. An OpenBLAS pool of one busy-waiting thread per core, started when
# numpy loads, costs ~0.2 CPU s per process (a third of a bare `import jax`) and competes with XLA's own
# threads, so the levda command runs OpenBLAS single-threaded unless the user has chosen
# (OPENBLAS_NUM_THREADS or OMP_NUM_THREADS set). Here, in the command line's package, because it must
# happen before numpy is imported; importing levda_cli as a library changes nothing.
if "OPENBLAS_NUM_THREADS" not in os.environ and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
