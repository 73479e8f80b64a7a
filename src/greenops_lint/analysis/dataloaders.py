"""What a `torch.utils.data.DataLoader` call is, and whether it serves evaluation.

Shared by the rules that read DataLoader settings (GO305, GO509-GO511, GO514).
"""

from __future__ import annotations

import re

# The DataLoader classes whose constructor takes `num_workers=`, `pin_memory=`, ...
DATALOADER_CLASSES = frozenset(
    {
        "torch.utils.data.DataLoader",
        "torch.utils.data.dataloader.DataLoader",
        "torch_geometric.loader.DataLoader",
    }
)
# DataLoader(dataset, batch_size, shuffle, sampler, batch_sampler, num_workers, collate_fn, pin_memory, ...)
NUM_WORKERS_POSITION = 5
COLLATE_FN_POSITION = 6
PIN_MEMORY_POSITION = 7

# "val", "valid", "test", "eval", "dev", "pred", "infer", "holdout" at the start
# of a word (not "interval", "device", "value", "latest").
EVAL_MARKERS = re.compile(r"(?<![a-z])(val(?!ue)|test|eval|dev(?!ice)|pred|infer|holdout|calib)", re.IGNORECASE)
