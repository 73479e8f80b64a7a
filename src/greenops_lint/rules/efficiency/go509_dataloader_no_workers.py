"""GO509: a DataLoader that reads or transforms samples in the training process (no workers)."""

from __future__ import annotations

import libcst as cst

from greenops_lint.analysis.calls import get_arg
from greenops_lint.rule import Invalid, Rule
from greenops_lint.rules.efficiency._dataloaders import (
    NUM_WORKERS_POSITION,
    dataset_work,
    has_star_args,
    is_dataloader,
    keyword_value,
    serves_evaluation,
    trains_on_cuda,
    workers_estimate,
)
from greenops_lint.savings import SOURCE_CITED

# Estimate (`## Estimate`): `workers_estimate` in `_dataloaders.py` (PyTorch data-loading
# tutorial, 1.0-2.7x). The worker counts the message suggests starting from.
START_WORKERS_LOW, START_WORKERS_HIGH = 2, 4


class DataLoaderNoWorkers(Rule):
    """Loads and transforms every sample in the training process while the GPU waits.

    ## What it does
    Flags a `DataLoader` without `num_workers` (or with `num_workers=0`,
    also through a constant) in a module that trains on a CUDA GPU, when its
    dataset does work per sample: a dataset class of the module whose
    `__getitem__` opens or decodes a file (`open`, `Image.open`, `cv2.imread`,
    `torch.load`, `np.load`, ...) or applies a transform, augmentation or
    tokenizer; a torchvision `ImageFolder`/`DatasetFolder`; a torchvision
    dataset with a `transform=`.

    Not flagged: in-memory datasets (`TensorDataset`, a `__getitem__` that
    only indexes tensors), datasets not known in the module, an
    `IterableDataset` (workers duplicate its stream unless it shards),
    validation/test/prediction loaders, CPU-only scripts, inference scripts
    (no backward pass), calls with `*args`/`**kwargs`, a `num_workers` from
    configuration (`args.workers`), a dataset that moves samples to the GPU
    itself (GO514 reports that), and test files.

    ## Why is this bad
    With `num_workers=0` the training process reads, decodes and transforms
    every sample of a batch itself, one after another, and the GPU sits idle
    meanwhile: the step time is loading time plus compute time instead of
    the larger of the two. PyTorch's tuning guide says so ("the training
    process has to wait for the data"), and its data-loading tutorial
    measured an epoch over a dataset with a 5 ms per-sample transform about
    2.7x faster with 4 workers than with none. Hugging Face's
    `dataloader_num_workers` and TorchFix's TOR401 make the same point.

    This is the other side of GO301 and GO304: size the workers to what the
    job needs, not to the machine's maximum (GO301: every CPU; GO304: far
    beyond need) and not to the minimum (here: none while loading is the
    bottleneck). A loader is only ever flagged one way: this rule needs
    `num_workers` absent or 0, the other two need a count.

    ## Example
    ```python
    train_loader = DataLoader(ImageFolder("data/train", transform=augment), batch_size=64, shuffle=True)
    ```

    ## Fix
    Start with 2-4 workers (at most the CPUs the job has; each DDP rank
    starts its own), add `persistent_workers=True`, measure samples/s and
    stop when it stops rising. No autofix: workers pickle the dataset and
    the collate function (lambdas fail under spawn) and run `__getitem__` in
    other processes.

    ## Estimate
    Time factor of training: 1.0x (GPU-bound step) to 2.7x (loading-bound),
    cited from PyTorch's data-loading tutorial (5 ms per-sample transform,
    4 workers). The faster the GPU, the larger the share of the step spent
    waiting for the loader. `greenops-lint probe` measures 0 against N
    workers on your CPU (a CPU measurement, labelled so: it shows the
    loading time saved, not the GPU's share).
    """

    code = "GO509"
    name = "dataloader-no-workers"
    family = "efficiency"
    estimate_sources = {
        SOURCE_CITED: "PyTorch's data-loading tutorial (CPU loading, 4 workers, 5 ms per sample); the GPU share is not measured",
    }
    tokens = ("DataLoader",)
    analyses = ("dataset_classes",)
    INVALID = [
        Invalid(
            """
            import torch
            from torch.utils.data import DataLoader
            from torchvision.datasets import ImageFolder
            train_loader = DataLoader(ImageFolder("data/train", transform=augment), batch_size=64, shuffle=True)
            model = Net().cuda()
            for x, y in train_loader:
                loss = criterion(model(x.cuda()), y.cuda())
                loss.backward()
            """,
            line=4,
            message="loads in the training process (no num_workers): ImageFolder decodes an image file per sample",
        ),
        Invalid(
            """
            import torch as T
            from torch.utils.data import DataLoader as DL, Dataset
            from PIL import Image

            class Photos(Dataset):
                def __init__(self, paths):
                    self.paths = paths
                def __getitem__(self, i):
                    return self.transform(Image.open(self.paths[i]))

            loader = DL(Photos(paths), batch_size=32, num_workers=0)
            device = T.device("cuda")
            for x in loader:
                model(x.to(device)).mean().backward()
            """,
            line=11,
            message="num_workers=0",
        ),
    ]
    VALID = [
        # Workers already set.
        """
        import torch
        from torch.utils.data import DataLoader
        from torchvision.datasets import ImageFolder
        loader = DataLoader(ImageFolder("data/train"), batch_size=64, num_workers=4)
        model(next(iter(loader))[0].cuda()).sum().backward()
        """,
        # In-memory tensors: nothing to load per sample.
        """
        import torch
        from torch.utils.data import DataLoader, TensorDataset
        loader = DataLoader(TensorDataset(X, y), batch_size=64, shuffle=True)
        for x, y in loader:
            model(x.cuda()).sum().backward()
        """,
        # CPU-only script.
        """
        import torch
        from torch.utils.data import DataLoader
        from torchvision.datasets import ImageFolder
        loader = DataLoader(ImageFolder("data/train"), batch_size=64)
        for x, y in loader:
            model(x).sum().backward()
        """,
        # Inference: no backward pass.
        """
        import torch
        from torch.utils.data import DataLoader
        from torchvision.datasets import ImageFolder
        loader = DataLoader(ImageFolder("data/test"), batch_size=64)
        with torch.no_grad():
            for x, _ in loader:
                preds.append(model(x.cuda()))
        """,
        # A validation loader in a training script.
        """
        import torch
        from torch.utils.data import DataLoader
        from torchvision.datasets import ImageFolder
        val_loader = DataLoader(ImageFolder("data/val"), batch_size=64)
        model(x.cuda()).sum().backward()
        """,
        # Worker count from configuration, or through **kwargs.
        """
        import torch
        from torch.utils.data import DataLoader
        from torchvision.datasets import ImageFolder
        loader = DataLoader(ImageFolder("data/train"), batch_size=64, num_workers=args.workers)
        other = DataLoader(ImageFolder("data/train"), **loader_kwargs)
        model(x.cuda()).sum().backward()
        """,
    ]

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        if not is_dataloader(ctx, node) or has_star_args(node) or not trains_on_cuda(ctx):
            return
        workers = keyword_value(ctx, node, "num_workers", NUM_WORKERS_POSITION)
        if workers not in (None, 0):
            return
        dataset = get_arg(node, "dataset", 0)
        if dataset is None or serves_evaluation(ctx, node):
            return
        work = dataset_work(ctx, dataset.value)
        if work is None:
            return
        setting = "no num_workers" if workers is None else "num_workers=0"
        self.report(
            node,
            f"this DataLoader loads in the training process ({setting}): {work}, one sample after another while "
            f"the GPU waits; start {START_WORKERS_LOW}-{START_WORKERS_HIGH} workers (at most the CPUs the job has) "
            "with persistent_workers=True",
            workers_estimate(ctx),
        )
