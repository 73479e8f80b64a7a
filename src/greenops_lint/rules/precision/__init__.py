"""GO4xx: float64 where float32 or lower precision would do.

Framework defaults are float32 for a reason: float64 doubles every byte moved
and, on GPUs, runs on units with 1/2 (datacenter) to 1/64 (consumer and
inference parts) of the float32 throughput, and never on tensor cores.
"""
