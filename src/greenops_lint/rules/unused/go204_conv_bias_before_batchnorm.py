"""GO204: a convolution with a bias feeds straight into BatchNorm, which cancels the bias."""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from greenops_lint.analysis.attributes import module_attributes
from greenops_lint.analysis.calls import get_arg, has_star_kwargs, literal_value
from greenops_lint.analysis.rewrite import with_keyword
from greenops_lint.analysis.tree import is_self_attr
from greenops_lint.finding import Fix, SavingsEstimate
from greenops_lint.rule import Invalid, Rule
from greenops_lint.rules.unused._shared import FLOAT32_BYTES, pretrained_port_signal
from greenops_lint.savings import SOURCE_CODE, SOURCE_DERIVED, extra_bytes_estimate

# The page's `## Estimate`: `out_channels` x FLOAT32_BYTES; when the channel count
# is not literal, the range of common CNN layers.
CHANNELS_LOW, CHANNELS_HIGH = 16, 2048
_WITHIN_NOISE = "the broadcast add it saves is within noise"

_TORCH_CONV = re.compile(r"^torch\.nn\.(Lazy)?Conv(Transpose)?(?P<dims>[123])d$")
_TORCH_BN = re.compile(r"^torch\.nn\.(BatchNorm(?P<dims>[123])d|SyncBatchNorm)$")
_KERAS_CONV = re.compile(r"^keras\.layers\.(Conv|Convolution|SeparableConv|DepthwiseConv)(?P<dims>[123])D(Transpose)?$")
_KERAS_BN = frozenset({"keras.layers.BatchNormalization"})


class ConvBiasBeforeBatchNorm(Rule):
    """A convolution with a bias feeds straight into BatchNorm, which cancels the bias.

    ## What it does
    Flags `nn.Conv{1,2,3}d` / `nn.ConvTranspose{1,2,3}d` with `bias=True` (the
    default) immediately followed by `nn.BatchNorm{1,2,3}d` (same dimension) or
    `nn.SyncBatchNorm`: adjacent arguments of `nn.Sequential` (also through an
    `OrderedDict`), adjacent items of a layer list (`layers += [conv, bn, relu]`),
    consecutive `layers.append(conv)` / `layers.append(bn)` calls, and
    `self.bn(self.conv(x))` in a model method when `self.conv` is used nowhere
    else. The same for Keras `Conv{1,2,3}D` with `use_bias=True` (the default)
    and no activation, followed by `BatchNormalization()` in a `Sequential`
    list, consecutive `model.add(...)` calls, or consecutive functional calls
    (`x = Conv2D(64, 3)(x)` then `x = BatchNormalization()(x)`).

    Not flagged: `bias=False` / `use_bias=False`, a bias given as a variable,
    an activation between the two, Keras convolutions with an `activation=`
    or a `data_format=`, BatchNorm over a different dimension, GroupNorm and
    LayerNorm, a conv whose output is also used elsewhere, and modules that
    port a pretrained model (a class deriving from a `*PreTrainedModel` or
    `ModelMixin` base, `_keys_to_ignore_on_load*`, `_tied_weights_keys`,
    `base_model_prefix`, timm's `pretrained_cfg` / `build_model_with_cfg`,
    `load_state_dict_from_url`, "Adapted from `https://github.com/...`"):
    released checkpoints carry the bias, and
    BatchNorm's running mean was accumulated with it, so `bias=False` makes
    them load with an unexpected key and changes eval outputs unless the bias
    is folded into the running mean. The fix is not offered there.

    ## Why is this bad
    BatchNorm subtracts the per-channel mean of its input, so a per-channel
    constant added just before it (the conv bias) is removed again, in training
    and in eval mode alike. The bias is `out_channels` wasted parameters and a
    broadcast add in forward and backward on every step. PyTorch's tuning guide
    and profiler (`Conv2dBiasFollowedByBatchNorm2dPattern`) flag this pattern.
    The saving is small: creedengo GCI101 measured nearly identical epoch time.

    ## Fix
    Pass `bias=False` (`use_bias=False` in Keras) to the convolution.
    Autofix: unsafe (the state dict loses `conv.bias`; load old checkpoints
    with `strict=False`).

    ## Estimate
    `out_channels` x 4 bytes of parameters (when the channel count is not
    literal, 16-2048 channels: 64 B to 8 KiB); the time saved (one broadcast
    add per conv) is within noise.
    """

    code = "GO204"
    name = "conv-bias-before-batchnorm"
    family = "unused"
    estimate_sources = {
        SOURCE_CODE: "any device: `out_channels` x 4 bytes",
        SOURCE_DERIVED: "any device: 16-2048 channels assumed when the count is not literal",
    }
    fixable = True
    fix_safety = "unsafe"
    severity = "info"
    analyses = ("module_attributes",)
    tokens = ("BatchNorm", "SyncBatchNorm")
    INVALID = [
        Invalid(
            """
            import torch.nn as nn
            block = nn.Sequential(nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU())
            """,
            line=2,
            message="nn.Conv2d(64, 128, 3, padding=1) adds a bias that the BatchNorm right after it subtracts again",
            fixed="""
            import torch.nn as nn
            block = nn.Sequential(nn.Conv2d(64, 128, 3, padding=1, bias=False), nn.BatchNorm2d(128), nn.ReLU())
            """,
        ),
        """
        from torch import nn
        layers = []
        layers += [nn.Conv2d(3, 64, kernel_size=3), nn.BatchNorm2d(64), nn.ReLU(inplace=True)]
        features = nn.Sequential(*layers)
        """,
        Invalid(
            """
            from tensorflow import keras
            from tensorflow.keras import layers
            model = keras.Sequential([layers.Conv2D(32, 3), layers.BatchNormalization(), layers.ReLU()])
            """,
            line=3,
            message="pass use_bias=False",
            fixed="""
            from tensorflow import keras
            from tensorflow.keras import layers
            model = keras.Sequential([layers.Conv2D(32, 3, use_bias=False), layers.BatchNormalization(), layers.ReLU()])
            """,
        ),
    ]
    VALID = [
        """
        import torch.nn as nn
        block = nn.Sequential(nn.Conv2d(64, 128, 3, padding=1, bias=False), nn.BatchNorm2d(128), nn.ReLU())
        """,
        """
        import torch.nn as nn
        block = nn.Sequential(nn.Conv2d(64, 128, 3), nn.ReLU(), nn.BatchNorm2d(128))
        """,
        """
        import torch.nn as nn
        block = nn.Sequential(nn.Conv1d(64, 128, 3), nn.BatchNorm2d(128))
        """,
        """
        from tensorflow.keras import layers, Sequential
        model = Sequential([layers.Conv2D(32, 3, activation="relu"), layers.BatchNormalization()])
        """,
        """
        import torch.nn as nn
        from transformers import PreTrainedModel

        class GLPNPreTrainedModel(PreTrainedModel):
            base_model_prefix = "glpn"

        class SelectiveFeatureFusion(nn.Module):
            def __init__(self, in_channel=64):
                super().__init__()
                # The released checkpoints carry this bias: bias=False breaks loading them.
                self.block = nn.Sequential(nn.Conv2d(in_channel * 2, in_channel, 3, padding=1), nn.BatchNorm2d(in_channel))
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self._reported: set[int] = set()
        self._positions: dict[int, dict[int, int]] = {}

    # -- what an expression is ------------------------------------------------
    def _resolve(self, node: cst.BaseExpression) -> Optional[cst.Call]:
        if isinstance(node, cst.Name):
            value = self.ctx.value_of(node)
            return value if isinstance(value, cst.Call) else None
        return node if isinstance(node, cst.Call) else None

    def _conv(self, node: cst.BaseExpression) -> Optional[tuple[str, str, cst.Call]]:
        """(framework, dims, call) for a convolution whose bias is on."""
        call = self._resolve(node)
        if call is None or has_star_kwargs(call) or any(a.star for a in call.args):
            return None
        qualified = self.ctx.call_name(call) or ""
        match = _TORCH_CONV.match(qualified)
        if match:
            bias = get_arg(call, "bias", 7)
            if bias is not None and literal_value(bias.value) is not True:
                return None
            return "torch", match.group("dims"), call
        match = _KERAS_CONV.match(qualified)
        if match:
            if sum(1 for a in call.args if a.keyword is None) > 4 or get_arg(call, "data_format") is not None:
                return None
            use_bias = get_arg(call, "use_bias")
            if use_bias is not None and literal_value(use_bias.value) is not True:
                return None
            activation = get_arg(call, "activation")
            if activation is not None and literal_value(activation.value) not in (None, "linear"):
                return None
            return "keras", match.group("dims"), call
        return None

    def _bn(self, node: cst.BaseExpression) -> Optional[tuple[str, Optional[str]]]:
        call = self._resolve(node)
        if call is None:
            return None
        qualified = self.ctx.call_name(call) or ""
        match = _TORCH_BN.match(qualified)
        if match:
            return "torch", match.group("dims")
        if qualified in _KERAS_BN:
            axis = get_arg(call, "axis", 0)
            if axis is not None and literal_value(axis.value) != -1:
                return None
            return "keras", None
        return None

    def _pair(self, first: cst.BaseExpression, second: cst.BaseExpression, report_at: cst.CSTNode) -> None:
        conv = self._conv(first)
        if conv is None:
            return
        bn = self._bn(second)
        if bn is None or bn[0] != conv[0] or (bn[1] is not None and bn[1] != conv[1]):
            return
        self._report(report_at, conv[2])

    def _report(self, node: cst.CSTNode, conv: cst.Call) -> None:
        # Reported where the conv is built: the fix and a noqa belong there,
        # also when the pair was found in `forward`.
        node = conv
        if pretrained_port_signal(self.ctx):
            return  # bias=False would break loading the released checkpoints
        if id(node) in self._reported:
            return
        self._reported.add(id(node))
        torch_style = self.ctx.call_name(conv).startswith("torch.")
        channels = get_arg(conv, "out_channels", 1) if torch_style else get_arg(conv, "filters", 0)
        count = literal_value(channels.value) if channels is not None else None
        if isinstance(count, int) and not isinstance(count, bool) and count > 0:
            estimate = extra_bytes_estimate(
                count * FLOAT32_BYTES,
                f"{count} bias parameters x {FLOAT32_BYTES} bytes (float32); {_WITHIN_NOISE}",
                self.ctx.hardware,
            )
        else:
            estimate = SavingsEstimate(
                metric="memory_bytes",
                low=float(CHANNELS_LOW * FLOAT32_BYTES),
                high=float(CHANNELS_HIGH * FLOAT32_BYTES),
                unit="bytes",
                basis=f"out_channels bias parameters x {FLOAT32_BYTES} bytes (float32); {_WITHIN_NOISE}",
                hardware=self.ctx.hardware.key,
                source=SOURCE_DERIVED,
                assumptions=(
                    f"the channel count is not literal: {CHANNELS_LOW}-{CHANNELS_HIGH} channels, "
                    "the range of common CNN layers",
                ),
            )
        keyword = "bias" if torch_style else "use_bias"
        self.report(
            node,
            f"{self.ctx.snippet(conv, 48)} adds a bias that the BatchNorm right after it subtracts again "
            f"(wasted parameters and a broadcast add every step); pass {keyword}=False",
            estimate,
            fix=Fix(
                conv,
                lambda updated: with_keyword(updated, keyword, cst.Name("False")),
                safe=False,
                title=f"{keyword}=False",
            ),
        )

    # -- patterns ------------------------------------------------------------------
    def visit_Call(self, node: cst.Call) -> None:
        qualified = self.ctx.call_name(node)
        if qualified == "torch.nn.Sequential":
            items = self._sequential_items(node)
            for first, second in zip(items, items[1:]):
                self._pair(first, second, first)
            return
        func = node.func
        if (
            isinstance(func, cst.Attribute)
            and is_self_attr(func)
            and len(node.args) >= 1
            and isinstance(node.args[0].value, cst.Call)
            and is_self_attr(node.args[0].value.func)
        ):
            self._forward_pair(node.args[0].value.func.attr.value, func.attr.value, node)

    def _sequential_items(self, node: cst.Call) -> list[cst.BaseExpression]:
        if len(node.args) == 1 and node.args[0].keyword is None and not node.args[0].star:
            only = node.args[0].value
            if isinstance(only, cst.Call) and (self.ctx.call_name(only) or "").endswith("OrderedDict") and only.args:
                pairs = only.args[0].value
                if isinstance(pairs, (cst.List, cst.Tuple)):
                    items = []
                    for element in pairs.elements:
                        if isinstance(element.value, cst.Tuple) and len(element.value.elements) == 2:
                            items.append(element.value.elements[1].value)
                        else:
                            return []
                    return items
        return [a.value for a in node.args if a.keyword is None and not a.star]

    def visit_List(self, node: cst.List) -> None:
        if "Sequential" not in self.ctx.text:
            return
        parent_call = self.ctx.parent(2)
        if isinstance(parent_call, cst.Call) and (self.ctx.call_name(parent_call) or "").endswith(
            ("ModuleList", "ModuleDict")
        ):
            return
        items = [e.value for e in node.elements if not isinstance(e, cst.StarredElement)]
        if len(items) != len(node.elements):
            return
        for first, second in zip(items, items[1:]):
            self._pair(first, second, first)

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> None:
        # Checked when the second statement of a pair is reached, so that the
        # names the first one uses (`conv2d = nn.Conv2d(...)`) are bound.
        if len(node.body) != 1:
            return
        block = self.ctx.parent(1)
        body = getattr(block, "body", None)
        if not isinstance(body, (tuple, list)):
            return
        positions = self._positions.get(id(block))
        if positions is None:
            positions = {id(stmt): index for index, stmt in enumerate(body)}
            self._positions[id(block)] = positions
        index = positions.get(id(node), 0)
        if index == 0:
            return
        previous = body[index - 1]
        if isinstance(previous, cst.SimpleStatementLine) and len(previous.body) == 1:
            self._statement_pair(previous.body[0], node.body[0])

    def _statement_pair(self, first: cst.BaseSmallStatement, second: cst.BaseSmallStatement) -> None:
        # layers.append(conv); layers.append(bn)  /  model.add(conv); model.add(bn)
        if isinstance(first, cst.Expr) and isinstance(second, cst.Expr):
            a, b = first.value, second.value
            if (
                isinstance(a, cst.Call)
                and isinstance(b, cst.Call)
                and isinstance(a.func, cst.Attribute)
                and isinstance(b.func, cst.Attribute)
                and a.func.attr.value == b.func.attr.value
                and a.func.attr.value in ("append", "add")
                and len(a.args) == 1
                and len(b.args) == 1
                and self.ctx.module.code_for_node(a.func.value) == self.ctx.module.code_for_node(b.func.value)
            ):
                if a.func.attr.value == "append" and "Sequential" not in self.ctx.text:
                    return
                self._pair(a.args[0].value, b.args[0].value, a.args[0].value)
            return
        # x = Conv2D(64, 3)(x); x = BatchNormalization()(x)   /   x = self.conv(x); x = self.bn(x)
        if not (isinstance(first, cst.Assign) and isinstance(second, cst.Assign)):
            return
        if len(first.targets) != 1 or len(second.targets) != 1:
            return
        target, again = first.targets[0].target, second.targets[0].target
        a, b = first.value, second.value
        if not (isinstance(target, cst.Name) and isinstance(again, cst.Name) and target.value == again.value):
            return
        if not (isinstance(a, cst.Call) and isinstance(b, cst.Call) and len(b.args) == 1):
            return
        if not (isinstance(b.args[0].value, cst.Name) and b.args[0].value.value == target.value):
            return
        if isinstance(a.func, cst.Call) and isinstance(b.func, cst.Call):
            conv = self._conv(a.func)
            if conv is not None and conv[0] == "keras":
                self._pair(a.func, b.func, a)
        elif is_self_attr(a.func) and is_self_attr(b.func):
            self._forward_pair(a.func.attr.value, b.func.attr.value, a)

    def _forward_pair(self, conv_attr: str, bn_attr: str, report_at: cst.CSTNode) -> None:
        """`self.bn(self.conv(x))` in a model class whose `conv` is used only here."""
        cls = self.ctx.enclosing_class()
        if cls is None:
            return
        analysis = module_attributes(self.ctx)
        info = analysis.classes.get(cls.name.value)
        if info is None or info.node is not cls or info.kind != "torch" or not analysis.is_analysable(info.name):
            return
        convs = analysis.group_assignments(info.name, conv_attr)
        bns = analysis.group_assignments(info.name, bn_attr)
        if not convs or not bns:
            return
        stored = analysis.group_stores(info.name)
        if conv_attr not in stored or bn_attr not in stored:
            return
        if len(convs) != analysis.group_store_count(info.name, conv_attr):
            return  # assigned outside __init__ too
        if len(bns) != analysis.group_store_count(info.name, bn_attr):
            return
        conv_infos = [self._conv(value) for value in convs]
        bn_infos = [self._bn(value) for value in bns]
        if any(c is None or c[0] != "torch" for c in conv_infos) or any(b is None or b[0] != "torch" for b in bn_infos):
            return
        dims = {c[1] for c in conv_infos}
        if len(dims) != 1 or any(b[1] is not None and b[1] not in dims for b in bn_infos):
            return
        if analysis.group_reads(info.name)[conv_attr] != 1:
            return
        reads, words = analysis.external_reads()
        if reads[conv_attr] or conv_attr in words:
            return
        self._report(report_at, conv_infos[0][2])
