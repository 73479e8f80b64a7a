"""What the DataLoader rules (GO509-GO511, GO514) share: does the module train
on a CUDA GPU, which loader a call builds and what its dataset does per sample.

DataLoader classes and evaluation markers live in `analysis/dataloaders.py`
(GO305 reads them too); CUDA detection is `analysis/efficiency.py`'s.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional

import libcst as cst

from greenops_lint.analysis.calls import NOT_LITERAL, get_arg, literal_value
from greenops_lint.analysis.dataloaders import (  # noqa: F401 - the positions are re-exported for the rules
    COLLATE_FN_POSITION,
    DATALOADER_CLASSES,
    EVAL_MARKERS,
    NUM_WORKERS_POSITION,
    PIN_MEMORY_POSITION,
)
from greenops_lint.analysis.efficiency import is_device_expr, uses_cuda, uses_torch
from greenops_lint.analysis.functions import returned_values
from greenops_lint.analysis.names import dotted_name
from greenops_lint.analysis.tree import is_test_file, last_word, walk_expr
from greenops_lint.finding import SavingsEstimate
from greenops_lint.savings import SOURCE_CITED

if TYPE_CHECKING:  # pragma: no cover
    from greenops_lint.context import FileContext

# -- the estimate GO509 and GO514 share (their `## Estimate`) -------------------------------
# PyTorch's data-loading tutorial (intermediate_data_loading_tutorial.py): a synthetic dataset
# with a 5 ms per-sample transform, num_workers=0 against num_workers=4 (prefetch_factor=2).
TUTORIAL_WORKERS = 4
TUTORIAL_TRANSFORM_MS = 5
WORKERS_TIME_LOW = 1.0
WORKERS_TIME_HIGH = 2.7

# Training evidence: a backward pass, or a framework training step.
_TRAINING_TEXT = re.compile(r"\.backward\(|def training_step\(|def train_step\(")

# Per-sample reads: files opened or decoded in `__getitem__`.
_READERS = frozenset(
    {
        "builtins.open",
        "PIL.Image.open",
        "cv2.imread",
        "cv2.imdecode",
        "imageio.imread",
        "imageio.v2.imread",
        "imageio.v3.imread",
        "skimage.io.imread",
        "numpy.load",
        "numpy.fromfile",
        "numpy.loadtxt",
        "torch.load",
        "torchaudio.load",
        "librosa.load",
        "soundfile.read",
        "h5py.File",
        "torchvision.io.read_image",
        "torchvision.io.decode_image",
        "torchvision.io.read_file",
        "torchvision.io.decode_jpeg",
        "torchvision.datasets.folder.default_loader",
        "torchvision.datasets.folder.pil_loader",
        "nibabel.load",
        "SimpleITK.ReadImage",
        "tifffile.imread",
        "json.load",
        "pickle.load",
        "pandas.read_csv",
        "pandas.read_parquet",
        "rasterio.open",
        "decord.VideoReader",
        "av.open",
    }
)
_READER_NAMES = re.compile(
    r"(^|_)(imread|read_image|load_image|load_audio|read_audio|pil_loader|default_loader|loader)$"
)
# Per-sample transforms: `self.transform(x)`, `self.augment(x)`, `self.tokenizer(text)`, ...
_TRANSFORM_NAMES = re.compile(
    r"(^|_)(transforms?|augment\w*|augmentations?|aug|tokeni[sz]er|preprocess\w*|process|encode|featuri[sz]e\w*)$",
    re.IGNORECASE,
)
# In-memory datasets: indexing tensors costs next to nothing per sample.
_IN_MEMORY = frozenset({"torch.utils.data.TensorDataset", "torch.utils.data.dataset.TensorDataset"})
_WRAPPERS = frozenset({"torch.utils.data.Subset", "torch.utils.data.dataset.Subset"})
_DECODING_DATASETS = frozenset(
    {"torchvision.datasets.ImageFolder", "torchvision.datasets.DatasetFolder", "torchvision.datasets.ImageNet"}
)
_ITERABLE_BASES = ("IterableDataset",)
SAMPLE_METHODS = ("__getitem__", "__getitems__")


def trains_on_cuda(ctx: "FileContext") -> bool:
    """The module trains a PyTorch model and moves work to a CUDA GPU (not a test)."""
    return uses_torch(ctx) and uses_cuda(ctx) and bool(_TRAINING_TEXT.search(ctx.text)) and not is_test_file(ctx.path)


def is_dataloader(ctx: "FileContext", node: cst.Call) -> bool:
    return ctx.call_name(node) in DATALOADER_CLASSES


def loader_target(ctx: "FileContext") -> str:
    """The name a DataLoader call being visited is assigned to ('' if none)."""
    parent = ctx.parent()
    if isinstance(parent, cst.Assign) and len(parent.targets) == 1:
        return ctx.snippet(parent.targets[0].target, 200)
    if isinstance(parent, cst.AnnAssign):
        return ctx.snippet(parent.target, 200)
    return ""


def serves_evaluation(ctx: "FileContext", node: cst.Call) -> bool:
    """A validation, test or prediction loader: by its name, its dataset's
    name, or the function that builds it (`val_dataloader()`)."""
    names = [loader_target(ctx)]
    dataset = get_arg(node, "dataset", 0)
    if dataset is not None:
        names.append(ctx.snippet(dataset.value, 200))
    function = ctx.enclosing_function()
    if function is not None:
        names.append(function.name.value)
    return any(EVAL_MARKERS.search(name) for name in names if name)


def keyword_value(ctx: "FileContext", call: cst.Call, keyword: str, position: int) -> object:
    """The literal value of an argument (through a name bound to a literal);
    None when absent, NOT_LITERAL when not a literal."""
    arg = get_arg(call, keyword, position)
    if arg is None:
        return None
    value = literal_value(arg.value)
    if value is NOT_LITERAL and isinstance(arg.value, cst.Name):
        bound = ctx.value_of(arg.value)
        if isinstance(bound, cst.BaseExpression):
            value = literal_value(bound)
    return value


def has_star_args(call: cst.Call) -> bool:
    return any(arg.star for arg in call.args)


# -- datasets ------------------------------------------------------------------------------


def _unwrap(ctx: "FileContext", expr: cst.BaseExpression, depth: int = 0) -> cst.BaseExpression:
    """The constructor call behind a dataset expression: through a name bound
    earlier, through `Subset(ds, ...)` and through a helper of the module
    that returns it (`build_dataset()`)."""
    if depth > 4:
        return expr
    if isinstance(expr, (cst.Name, cst.Attribute)):
        bound = ctx.value_of(expr)
        if isinstance(bound, cst.Call):
            return _unwrap(ctx, bound, depth + 1)
        return expr
    if isinstance(expr, cst.Call) and ctx.call_name(expr) in _WRAPPERS and expr.args:
        return _unwrap(ctx, expr.args[0].value, depth + 1)
    if isinstance(expr, cst.Call):
        returned = returned_values(ctx, expr)  # a helper of the module, one call deep
        if len(returned) == 1:
            return _unwrap(ctx, returned[0], depth + 1)
    return expr


def dataset_class(ctx: "FileContext", expr: cst.BaseExpression) -> Optional[cst.ClassDef]:
    """The module's own Dataset class a dataset expression instantiates."""
    root = _unwrap(ctx, expr)
    if isinstance(root, cst.Call) and isinstance(root.func, cst.Name):
        classes = ctx.dataset_classes
        node = classes.classes.get(root.func.value)
        if node is not None and (classes.is_model_class(node.name.value) or node.name.value.endswith("Dataset")):
            return node
    return None


def sample_method(cls: cst.ClassDef) -> Optional[cst.FunctionDef]:
    for statement in cls.body.body:
        if isinstance(statement, cst.FunctionDef) and statement.name.value in SAMPLE_METHODS:
            return statement
    return None


def per_sample_work(ctx: "FileContext", cls: cst.ClassDef) -> Optional[str]:
    """What the dataset's `__getitem__` does per sample: 'reads a file' or
    'transforms it' (`self.transform(x)`, a tokenizer, an augmentation);
    None when it only indexes data held in memory."""
    method = sample_method(cls)
    if method is None:
        return None
    transform = None
    for node in walk_expr(method.body):
        if not isinstance(node, cst.Call):
            continue
        qualified = ctx.qualified_name(node.func)
        label = last_word(node.func)
        if qualified in _READERS or (qualified is None and _READER_NAMES.search(label)):
            return f"reads a file per sample ({ctx.snippet(node.func, 40)})"
        if transform is None and (
            _TRANSFORM_NAMES.search(label)
            or (qualified or "").startswith(("torchvision.transforms.", "albumentations.", "torchaudio.transforms."))
        ):
            transform = f"transforms each sample ({ctx.snippet(node.func, 40)})"
    return transform


def moves_to_device(ctx: "FileContext", cls: cst.ClassDef) -> bool:
    """The dataset's `__getitem__` returns CUDA tensors (GO514's pattern)."""
    method = sample_method(cls)
    return method is not None and any(device_transfer(ctx, node) for node in walk_expr(method.body))


def device_transfer(ctx: "FileContext", node: cst.CSTNode) -> bool:
    """`x.cuda()`, `x.to("cuda")`, `x.to(self.device)`: a copy to the GPU."""
    if not isinstance(node, cst.Call) or not isinstance(node.func, cst.Attribute):
        return False
    method = node.func.attr.value
    if method == "cuda":
        return True
    if method == "to":
        target = get_arg(node, "device", 0)
        return target is not None and is_device_expr(ctx, target.value)
    return False


def dataset_work(ctx: "FileContext", expr: cst.BaseExpression) -> Optional[str]:
    """What the dataset a loader reads does per sample, or None when it holds
    tensors in memory, is iterable, or is not known here."""
    root = _unwrap(ctx, expr)
    if isinstance(root, cst.Call):
        qualified = ctx.call_name(root)
        if qualified in _IN_MEMORY:
            return None
        if qualified is not None and qualified.startswith("torchvision.datasets."):
            if qualified in _DECODING_DATASETS:
                return f"{qualified.rsplit('.', 1)[-1]} decodes an image file per sample"
            transform = get_arg(root, "transform")
            if transform is not None and literal_value(transform.value) is not None:
                return f"applies transform={ctx.snippet(transform.value, 40)} to each sample"
            return None
    cls = dataset_class(ctx, expr)
    if cls is None:
        return None
    for base in cls.bases:
        if (dotted_name(base.value) or "").endswith(_ITERABLE_BASES):
            return None  # workers of an IterableDataset duplicate its stream unless it shards
    if moves_to_device(ctx, cls):
        return None  # GO514's finding: workers cannot start CUDA
    work = per_sample_work(ctx, cls)
    return f"{cls.name.value} {work}" if work else None


def workers_estimate(ctx: "FileContext") -> SavingsEstimate:
    return SavingsEstimate(
        metric="time_factor",
        low=WORKERS_TIME_LOW,
        high=WORKERS_TIME_HIGH,
        unit="x training time",
        basis=f"PyTorch data-loading tutorial: a dataset with a {TUTORIAL_TRANSFORM_MS} ms per-sample transform ran "
        f"its epoch about {WORKERS_TIME_HIGH:g}x faster with num_workers={TUTORIAL_WORKERS} than with 0",
        hardware=ctx.hardware.key,
        assumptions=(
            "loading is on the critical path: the faster the GPU step, the larger the share of time the GPU waits "
            "for the loader; a step that is GPU-bound (large model, slow GPU) gains little",
            "the job has spare CPU cores for the workers",
        ),
        source=SOURCE_CITED,
    )
