"""Pins numerical libraries to one thread. Imported first by the prediction processes' fork
server (inference.py), before numpy: OpenBLAS and OpenMP then start no thread pools there, so
the fork server has no threads for a fork to copy mid-use. Never imported by the web server."""

import os

for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"
