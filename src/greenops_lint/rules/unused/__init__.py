"""GO2xx: model parts and loaded objects that do nothing, and debug switches left on.

Everything these rules flag costs memory, load time or step time and
contributes nothing to the result: a layer that `forward` never calls, a
checkpoint loaded into a name nobody reads, a DDP flag that makes every step
walk the autograd graph, a conv bias that the next BatchNorm subtracts again,
anomaly detection left on in a training run.
"""
