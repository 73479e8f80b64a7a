"""GO1xx: data, weights and pipelines loaded again although nothing changed.

All rules here record candidates during the walk, with the loops and guards
around them, and decide at the end of the module, when every loop is
classified (`analysis/candidates.py`, `analysis/loops.py`); `_shared.py` holds
what only they share: what "memoised" and "per sample" mean, and the estimate.
"""
