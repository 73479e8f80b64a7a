"""GO3xx: over-provisioning, "use the specification you need, not the maximum".

Worker, thread and job counts sized to the whole host, parallelism nested in
parallelism, oversized loader settings, full-dataset batches and padding to
the maximum length all buy nothing on a dedicated machine at best, and on a
shared machine (a container with a CPU quota, several DDP ranks, a notebook
server) they make everything slower and use more memory.

What over-subscription costs depends on the CPUs the job really gets and on
the data, which the code does not say. The estimates are therefore ranges
from measurements (here, on 2 CPUs) and published reports, scoped to the part
of the work they slow (`x data-loading time`, `x CPU compute time`), never
to the whole GPU workload; the probe's worker sweep measures the real figure.
"""
