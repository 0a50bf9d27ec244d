"""Profile every Python process started with this folder on ``PYTHONPATH``.

    PYTHONPATH=bench/cprofile_site FOREWARN_CPROFILE=/tmp/cprof \\
        .venv/bin/python bench/streaming.py throughput --limit 100000
    .venv/bin/python -m pstats /tmp/cprof.<worker pid>

Each process (the benchmark and the worker it starts) writes its cProfile statistics to
``$FOREWARN_CPROFILE.<pid>`` when it exits; the worker's is the larger file.
"""

import atexit
import cProfile
import os

if os.environ.get("FOREWARN_CPROFILE"):
    _profile = cProfile.Profile()
    _profile.enable()

    def _dump() -> None:
        _profile.disable()
        _profile.dump_stats(f"{os.environ['FOREWARN_CPROFILE']}.{os.getpid()}")

    atexit.register(_dump)
