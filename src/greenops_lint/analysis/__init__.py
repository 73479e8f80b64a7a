"""Analyses that several rules share, computed once per module.

`names`    -- import aliases and local bindings (which `T.float64` is `torch.float64`).
`calls`    -- small helpers to read a call's arguments.
`classes`  -- which classes of the module are models (`nn.Module` subclasses and friends).
"""
