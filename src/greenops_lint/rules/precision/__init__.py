"""GO4xx: float64 where float32 or lower precision would do.

Framework defaults are float32 for a reason: float64 doubles every byte moved
and, on GPUs, never runs as TF32/BF16: FP64 tensor cores match plain FP32
matmuls on A100/H100/H200, consumer and inference parts run FP64 at 1/32 to
1/64 of FP32. The estimates size the work from the file (savings.Workload).
"""
