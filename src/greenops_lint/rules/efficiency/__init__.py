"""GO5xx: GPU time spent on nothing.

The patterns every PyTorch performance guide lists and that a reviewer can
see in the code: host synchronisations on every step, tensors built on the CPU
and copied over, evaluation that records autograd graphs, DataParallel,
emptying the allocator's cache, quadratic concatenation, full-precision
training, and compiled wrappers rebuilt inside loops.

The loop rules read the loop-context analysis (`analysis/loops.py`) and the
shared facts of `analysis/efficiency.py`: they record candidates during the
walk, with the guards around them, and decide in `leave_Module`, when every
loop is classified (`_shared.LoopBoundRule`).
"""
