"""What only the GO2xx rules share: the measured cost of DDP's unused-parameter search.

GO201 (an unused layer forces the flag) and GO202 (the flag itself) quote the
same measurement, so it is written once, here.
"""

from __future__ import annotations

# Measured: step time with `find_unused_parameters=True` over step time without it.
DDP_STEP_TIME_FACTOR = 2.4
DDP_MEASURED_ON = "2 CPU (gloo) ranks with a 64 MiB unused layer"
# Bytes a float32 parameter takes, in memory and in a checkpoint.
FLOAT32_BYTES = 4
