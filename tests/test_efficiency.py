"""GO5xx efficiency rules: edge cases, decisions and estimates."""

from __future__ import annotations

import textwrap

import pytest

from conftest import lint_source
from greenops_lint.plugins import load_rules


def lines_of(findings, code):
    return [f.line for f in findings if f.code == code]


def only(code, source, path="snippet.py"):
    return lines_of(lint_source(source, select=(code,), path=path), code)


TRAIN_HEAD = """
import torch
import numpy as np
device = torch.device("cuda")
"""


# -- GO501 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "total += loss.item()",
        "print(loss)",
        "print(f'loss {loss}')",
        "history.append(float(loss))",
        "preds = out.argmax(1).cpu()",
        "ids = out.argmax(1).tolist()",
        "pbar.set_postfix(loss=loss.item())",
        "wandb.log({'loss': loss.item()})",
    ],
)
def test_go501_syncs_in_the_training_step_are_flagged(line):
    source = (
        TRAIN_HEAD
        + f"""
for step, (x, y) in enumerate(train_loader):
    out = model(x.to(device))
    loss = criterion(out, y.to(device))
    loss.backward()
    optimizer.step()
    {line}
"""
    )
    assert only("GO501", source) == [11]


@pytest.mark.parametrize(
    "guard",
    [
        "if step % 50 == 0:",
        "if (step + 1) % args.log_every == 0:",
        "if step == len(train_loader) - 1:",
        "if accelerator.sync_gradients:",
        "if step in checkpoints:",
    ],
)
def test_go501_guarded_syncs_are_not_flagged(guard):
    source = (
        TRAIN_HEAD
        + f"""
for step, (x, y) in enumerate(train_loader):
    loss = criterion(model(x.to(device)), y.to(device))
    loss.backward()
    optimizer.step()
    {guard}
        print(loss.item())
"""
    )
    assert only("GO501", source) == []


def test_go501_eval_loops_epoch_level_and_host_values_are_not_flagged():
    source = (
        TRAIN_HEAD
        + """
for epoch in range(10):
    for x, y in train_loader:
        loss = criterion(model(x.to(device)), y.to(device))
        loss.backward()
        optimizer.step()
        n += y.sum().item()
        score = np.mean(history).item()
        labels = y.tolist()
    print(loss.item())
    with torch.no_grad():
        for x, y in val_loader:
            acc += (model(x.to(device)).argmax(1) == y.to(device)).sum().item()
"""
    )
    assert only("GO501", source) == []


def test_go501_cpu_only_modules_are_not_checked():
    source = """
import torch
for x, y in train_loader:
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
    total += loss.item()
"""
    assert only("GO501", source) == []


def test_go501_follows_helpers_and_stops_at_guarded_call_sites():
    source = (
        TRAIN_HEAD
        + """
def log_metrics(loss):
    print(loss.item())

def running(loss):
    return loss.item()

for step, (x, y) in enumerate(train_loader):
    loss = criterion(model(x.to(device)), y.to(device))
    loss.backward()
    optimizer.step()
    total += running(loss)
    if step % 100 == 0:
        log_metrics(loss)
"""
    )
    assert only("GO501", source) == [10]


def test_go501_environment_actions_are_not_flagged():
    source = (
        TRAIN_HEAD
        + """
for t in range(10000):
    action = policy(state).argmax()
    state, reward, done, _ = env.step(action.item())
    loss = criterion(policy(state), target)
    loss.backward()
    optimizer.step()
"""
    )
    assert only("GO501", source) == []


def test_go501_lightning_training_step_but_not_validation_step():
    source = """
import torch
import lightning as L
class Lit(L.LightningModule):
    def training_step(self, batch, batch_idx):
        loss = self.net(batch).mean()
        self.log("loss", loss.item())
        return loss
    def validation_step(self, batch, batch_idx):
        self.log("val", self.net(batch).mean().item())
trainer = L.Trainer(accelerator="gpu")
"""
    assert only("GO501", source) == [7]


def test_go501_full_batch_training_counts_each_epoch_as_a_step():
    source = (
        TRAIN_HEAD
        + """
for epoch in range(300):
    optimizer.zero_grad()
    loss = criterion(model(X), y)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
"""
    )
    (finding,) = [f for f in lint_source(source, select=("GO501",)) if f.code == "GO501"]
    assert finding.line == 11 and "full-batch" in finding.message
    assert (finding.estimate.metric, finding.estimate.low, finding.estimate.high, finding.estimate.unit) == (
        "time_factor",
        1.0,
        2.0,
        "x",
    )


def _go501_findings(body, head=TRAIN_HEAD):
    source = (
        head
        + """
for step, (x, y) in enumerate(train_loader):
    out = model(x.to(device))
    loss = criterion(out, y.to(device))
"""
        + textwrap.indent(textwrap.dedent(body), "    ")
    )
    return [f for f in lint_source(source, select=("GO501",)) if f.code == "GO501"]


def test_go501_one_finding_per_statement():
    findings = _go501_findings("""
    loss.backward()
    optimizer.step()
    print(f"loss {loss.item():.3f} acc {acc.item():.3f} lr {lr.item()}")
    """)
    assert len(findings) == 1
    assert "2 more read(s) in this statement" in findings[0].message


@pytest.mark.parametrize(
    "body",
    [
        # early stop on the KL divergence (PPO): the host needs the value
        """
        approx_kl = torch.mean(ratio - 1).cpu().numpy()
        if approx_kl > 1.5 * target_kl:
            break
        loss.backward()
        optimizer.step()
        """,
        """
        loss.backward()
        optimizer.step()
        if loss.item() > 1e6:
            raise RuntimeError("diverged")
        """,
        """
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            sys.exit(1)
        loss.backward()
        optimizer.step()
        """,
        # DeepSpeed's step already syncs (overflow check, gradient norm)
        """
        loss.backward()
        optimizer.step()
        if self.accelerator.distributed_type == DistributedType.DEEPSPEED:
            grad_norm = grad_norm.item()
        """,
    ],
)
def test_go501_host_decisions_and_deepspeed_branches_are_not_flagged(body):
    assert _go501_findings(body) == []


def test_go501_a_step_that_already_syncs_for_a_decision_reports_other_reads_at_info():
    findings = _go501_findings("""
    pg_losses.append(loss.item())
    approx_kl = torch.mean(ratio - 1).cpu().numpy()
    if approx_kl > 1.5 * target_kl:
        break
    loss.backward()
    optimizer.step()
    """)
    assert [(f.line, f.severity) for f in findings] == [(10, "info")]
    assert "already syncs for a host decision" in findings[0].message
    findings = _go501_findings("""
    if not torch.isfinite(loss):
        raise ValueError("non-finite loss")
    loss.backward()
    optimizer.step()
    total += loss.item()
    """)
    assert [f.severity for f in findings] == ["info"]


def test_go501_reinforcement_learning_modules_report_at_info():
    findings = _go501_findings(
        """
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
    """,
        head=TRAIN_HEAD + "from gymnasium import spaces\n",
    )
    assert [f.severity for f in findings] == ["info"]
    assert "reinforcement learning" in findings[0].message


# -- GO502 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr",
    [
        "torch.zeros(8, 16).cuda()",
        "torch.ones(8).to(device)",
        "torch.arange(128).unsqueeze(0).to(x.device)",
        "torch.eye(4, dtype=torch.bool).to(args.device)",
        "torch.randn(8, 3).to('cuda:1')",
        "torch.full((4, 4), 0.5).to(device=dev)",
        "torch.empty(4, 4, device='cpu').cuda()",
        "torch.FloatTensor(4, 512).zero_().cuda()",
        "T.linspace(0, 1, 10).to(0)",
    ],
)
def test_go502_flags_host_factories_moved_to_the_device(expr):
    source = f"import torch\nimport torch as T\ndev = torch.device('cuda')\nx = {expr}\n"
    assert only("GO502", source) == [4]


@pytest.mark.parametrize(
    "expr",
    [
        "torch.zeros(8, device=device)",
        "torch.zeros(8).to(torch.float16)",
        "torch.zeros(8).to('cpu')",
        "torch.zeros(8).to(other_tensor)",
        "torch.tensor([1.0, 2.0]).to(device)",
        "torch.FloatTensor(values).cuda()",
        "torch.from_numpy(a).to(device)",
        "torch.zeros_like(x).to(device)",
        "torch.empty(1024, pin_memory=True).to(device, non_blocking=True)",
        "torch.randn(8, generator=g).to(device)",
        "torch.zeros(8).to(memory_format=torch.channels_last)",
    ],
)
def test_go502_look_alikes_are_not_flagged(expr):
    source = f"import torch\ndevice = torch.device('cuda')\nx = {expr}\n"
    assert only("GO502", source) == []


def test_go502_says_which_factories_are_safe_to_rewrite():
    rule = load_rules().rules["GO502"]
    assert {"zeros", "ones", "full", "empty", "arange", "linspace", "eye", "tensor"} <= rule.safe_fix_factories
    assert not {"rand", "randn", "randint", "randperm"} & rule.safe_fix_factories
    assert rule.fixable is True and rule.fix_safety == "safe"
    (deterministic,) = lint_source("import torch\nx = torch.zeros(4).cuda()\n", select=("GO502",))
    (random,) = lint_source("import torch\nx = torch.randn(4).cuda()\n", select=("GO502",))
    assert deterministic.fixable and not random.fixable


def test_go502_message_and_estimate_carry_the_literal_size():
    (finding,) = lint_source("import torch\nx = torch.zeros(1000, 16).cuda()\n", select=("GO502",))
    assert "64,000 bytes" in finding.message
    assert finding.estimate.metric == "repeated_work"
    (random,) = lint_source("import torch\nx = torch.randn(8).cuda()\n", select=("GO502",))
    assert "random stream" in random.message


def _go502(source, path="snippet.py"):
    return [(f.line, f.severity) for f in lint_source(source, select=("GO502",), path=path) if f.code == "GO502"]


def test_go502_per_forward_and_per_step_copies_are_warnings():
    source = """
import torch
from torch import nn
from somewhere import Base

class Attention(nn.Module):
    def forward(self, x, mask=None):
        if mask is None:
            mask = torch.ones(x.size(0), x.size(1)).to(x.device)
        return x * mask

class Head(Base):
    def forward(self, x):
        return x + torch.arange(x.size(1)).to(x.device)

def train(model, loader, device):
    for x, y in loader:
        noise = torch.randn(x.shape).to(device)
        loss = model(x.to(device) + noise)
        loss.backward()

def denoise(unet, latents, timesteps, device):
    for t in timesteps:
        latents = unet(latents, torch.full((1,), t).to(device))
    return latents
"""
    assert _go502(source) == [(9, "warning"), (14, "warning"), (18, "warning"), (24, "warning")]


def test_go502_one_off_copies_are_info():
    source = """
import torch
from torch import nn

mask = torch.zeros(64, 128).cuda()

class Net(nn.Module):
    def __init__(self, device):
        super().__init__()
        self.pos = torch.arange(512).to(device)
        for i in range(4):
            self.register_buffer(f"b{i}", torch.zeros(8).to(device))

def encode_prompt(text_ids, device):
    ids = torch.zeros(text_ids.shape[1], 3).to(device)
    return ids

def step(params, state):
    for p in params:
        if len(state) == 0:
            state["exp_avg_sq"] = torch.zeros([]).to(p.device)
        for k in ("a", "b"):
            state[k] = torch.zeros(2).to(p.device)
"""
    # the literal pair repeats in the loop over the parameters around it: per parameter, material
    assert _go502(source) == [(5, "info"), (10, "info"), (12, "info"), (15, "info"), (21, "info"), (23, "warning")]
    (once,) = [f for f in lint_source(source, select=("GO502",)) if f.line == 15]
    assert "once per call of encode_prompt()" in once.message
    assert "below the materiality threshold" in once.estimate.assumptions[-1]
    (lazy,) = [f for f in lint_source(source, select=("GO502",)) if f.line == 21]
    assert "4 bytes" in lazy.message and "lazy initialisation" in lazy.message


def test_go502_tests_and_testing_helpers_are_info():
    probe = """
import torch
def supports_float64(device):
    for _ in range(3):
        x = torch.zeros((2, 2), dtype=torch.float64).to(device)
    return x
"""
    for path in ("tests/test_ops.py", "pkg/utils/testing_utils.py", "pkg/testing/helpers.py"):
        assert _go502(probe, path=path) == [(5, "info")], path
    assert _go502(probe.replace("range(3)", "range(n)"), path="pkg/ops.py") == [(5, "warning")]


def test_go502_a_large_literal_copy_is_material_even_once():
    from greenops_lint.rules.efficiency.go502_cpu_tensor_then_moved import FLOAT32_BYTES, MATERIAL_BYTES

    side = int((MATERIAL_BYTES // FLOAT32_BYTES) ** 0.5)
    assert _go502(f"import torch\nx = torch.zeros({side}, {side}).cuda()\n") == [(2, "warning")]
    assert _go502(f"import torch\nx = torch.zeros({side}, {side - 1}).cuda()\n") == [(2, "info")]


# -- GO503 ---------------------------------------------------------------------


def test_go503_eval_mode_and_eval_names_without_no_grad():
    source = """
import torch
def validate(net, loader):
    return [net(x) for x, _ in loader]

def embed(model, loader):
    model.eval()
    out = []
    for x in loader:
        out.append(model(x))
    return out

def train_and_score(model, loader):
    model.train()
    for x, y in loader:
        loss = model(x).sum()
        loss.backward()
        opt.step()
"""
    assert only("GO503", source) == [4, 10]


@pytest.mark.parametrize(
    "wrapper",
    [
        "with torch.no_grad():",
        "with torch.inference_mode():",
        "with torch.set_grad_enabled(False):",
        "with torch.set_grad_enabled(phase == 'train'):",
        "with torch.enable_grad():",
    ],
)
def test_go503_grad_contexts_silence_it(wrapper):
    source = f"""
import torch
def evaluate(model, loader):
    model.eval()
    {wrapper}
        return [model(x) for x in loader]
"""
    assert only("GO503", source) == []


def test_go503_callers_decorators_and_frameworks():
    source = """
import torch
from transformers import Trainer
import lightning as L

@torch.no_grad()
def predict(model, xs):
    return [model(x) for x in xs]

def evaluate(model, loader):
    return [model(x) for x in loader]

class MyTrainer(Trainer):
    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        return [model(x) for x in inputs]

class Lit(L.LightningModule):
    def test_step(self, batch, batch_idx):
        return [self.model(x) for x in batch]

with torch.no_grad():
    scores = evaluate(model, val_loader)
"""
    assert only("GO503", source) == []


def test_go503_needs_gradients_frozen_models_discarded_results_and_tests():
    saliency = """
import torch
def explain(model, loader):
    model.eval()
    for x, y in loader:
        x.requires_grad_()
        model(x)[0, y].backward()
        yield x.grad
"""
    frozen = """
import torch
encoder.requires_grad_(False)
def evaluate(encoder, loader):
    return [encoder(x) for x in loader]
"""
    warmup = """
import torch
model.eval()
for _ in range(10):
    model(example)
"""
    in_tests = """
import torch
def test_shapes():
    model.eval()
    for bs in (1, 2, 4):
        assert model(torch.zeros(bs, 3)).shape[0] == bs
"""
    assert only("GO503", saliency) == []
    assert only("GO503", frozen) == []
    assert only("GO503", warmup) == []
    assert only("GO503", in_tests, path="tests/test_model.py") == []


def test_go503_callers_in_eval_mode_but_not_single_requests():
    source = """
import torch
from fastapi import FastAPI
app = FastAPI()

@app.post("/predict")
def predict(req):
    return classifier(req.x).tolist()  # one call per request, no loop: not this rule

def extract_features(model, loader):
    feats = []
    for x, _ in loader:
        feats.append(model(x))
    return feats

model.eval()
gallery = extract_features(model, gallery_loader)
"""
    assert only("GO503", source) == [13]


def test_go503_tokenizers_and_pipelines_are_not_models():
    source = """
import torch
from transformers import AutoTokenizer, pipeline
tokenizer = AutoTokenizer.from_pretrained("bert-base-uncased")
pipe = pipeline("sentiment-analysis")
def predict(texts):
    return [pipe(tokenizer(t)) for t in texts]
"""
    assert only("GO503", source) == []


def test_go503_a_helper_that_uses_no_grad_is_not_a_grad_switch_statement():
    # `validate(model)` as a statement runs validate under its own no_grad; it does
    # not switch gradients off for what follows (only set_grad_enabled(False) does).
    source = """
import torch
def validate(model, loader):
    with torch.no_grad():
        return [model(x) for x in loader]
def predict(model, loader):
    model.eval()
    validate(model, loader)
    return [model(x) for x in loader]
"""
    assert only("GO503", source) == [9]


def test_go503_user_grad_switches():
    source = """
import torch
from contextlib import nullcontext
from .utils import smart_inference_mode, enable_everything
@smart_inference_mode()
def predict(model, loader):
    return [model(x) for x in loader]
def predict_both(model, loader, with_grad):
    ctx = nullcontext if with_grad else torch.inference_mode
    with ctx():
        return [model(x) for x in loader]
@enable_everything()
def predict_plain(model, loader):
    return [model(x) for x in loader]
"""
    assert only("GO503", source) == [14]


# -- GO504 ---------------------------------------------------------------------


def test_go504_aliases_and_isinstance():
    source = """
import torch
import torch.nn as nn
from torch.nn import DataParallel
a = nn.DataParallel(net)
b = DataParallel(net)
c = torch.nn.parallel.DistributedDataParallel(net)
ok = isinstance(a, nn.DataParallel)
"""
    findings = lint_source(source, select=("GO504",))
    assert [f.line for f in findings] == [5, 6]
    assert findings[0].estimate.metric == "time_factor" and findings[0].estimate.unit == "x"


def test_go504_tests_check_the_api():
    source = """
import torch.nn as nn
def test_wraps_data_parallel():
    assert isinstance(nn.DataParallel(net), nn.Module)
"""
    assert only("GO504", source, path="tests/test_wrappers.py") == []
    assert only("GO504", source, path="wrappers.py") == [4]


# -- GO505 ---------------------------------------------------------------------


def test_go505_periods_handlers_and_epochs():
    source = """
import torch
for epoch in range(10):
    for step, batch in enumerate(train_loader):
        loss = model(batch).mean()
        loss.backward()
        optimizer.step()
        if step % 10 == 0:
            torch.cuda.empty_cache()
        if step % 200 == 0:
            torch.cuda.empty_cache()
        if step % args.every == 0:
            torch.cuda.empty_cache()
        try:
            optimizer.zero_grad()
        except RuntimeError:
            torch.cuda.empty_cache()
    torch.cuda.empty_cache()
"""
    assert only("GO505", source) == [9]


def test_go505_inference_data_loops_count_too():
    source = """
import torch
from torch.utils.data import DataLoader
loader = DataLoader(ds, batch_size=8)
for images, ids in loader:
    preds = model(images)
    for i, p in zip(ids, preds):
        save(i, p)
    torch.cuda.empty_cache()
for prompt in prompts:
    pipe(prompt)
    torch.cuda.empty_cache()
"""
    findings = lint_source(source, select=("GO505",))
    assert [f.line for f in findings] == [9]
    assert "data loop" in findings[0].message


# -- GO506 ---------------------------------------------------------------------


def test_go506_accumulators_and_look_alikes():
    source = """
import numpy as np
import pandas as pd
import torch
def gather(loader, model):
    out = torch.empty(0)
    arr = np.empty((0, 4))
    rows = pd.DataFrame()
    for x in loader:
        out = torch.cat((out, model(x)), 0)
        arr = np.vstack([arr, x.numpy()])
        rows = pd.concat(objs=[rows, pd.DataFrame(x)])
    return out, arr, rows

class Buffer:
    def fill(self, stream):
        while True:
            self.items = torch.cat([self.items, next(stream)])

def not_accumulators(loader, model, seq):
    window = torch.empty(0)
    for x in loader:
        window = torch.cat([window, x])[-10:]
        seq = torch.cat([seq, model(seq)])
        print(len(total))
        total = np.append(total, x)
    return window, seq
"""
    assert only("GO506", source) == [10, 11, 12, 18]


def test_go506_estimate_uses_literal_counts():
    source = "import torch\nacc = torch.empty(0)\nfor i in range(101):\n    acc = torch.cat([acc, f(i)])\n"
    (finding,) = lint_source(source, select=("GO506",))
    assert (finding.estimate.metric, finding.estimate.low, finding.estimate.high) == ("repeated_work", 50.0, 50.0)


def test_go506_a_keyword_named_like_the_accumulator_is_not_a_read():
    source = """
import torch
preds = torch.empty(0)
for x in loader:
    y = model(x, preds=True)
    preds = torch.cat([preds, y])
"""
    assert only("GO506", source) == [6]


def test_go506_estimate_states_the_assumed_iterations():
    from greenops_lint.rules.efficiency.go506_growing_concat_in_loop import ASSUMED_ITERATIONS, extra_copies

    source = "import torch\nacc = torch.empty(0)\nfor x in stream:\n    acc = torch.cat([acc, f(x)])\n"
    (finding,) = lint_source(source, select=("GO506",))
    assert (finding.estimate.low, finding.estimate.high) == (4.5, 499.5)
    assert finding.severity == "info"  # a loop of unknown size: not material
    assert (finding.estimate.low, finding.estimate.high) == tuple(extra_copies(n) for n in ASSUMED_ITERATIONS)
    assert finding.estimate.assumptions[0] == "the iteration count is not literal: 10-1000 iterations assumed"


def _go506(loop_header, indent_body="    "):
    source = f"import torch\nacc = torch.empty(0)\n{loop_header}\n{indent_body}acc = torch.cat([acc, f(x)])\n"
    (finding,) = lint_source(source, select=("GO506",))
    return finding


@pytest.mark.parametrize(
    "header",
    [
        "for x in loader:",
        "for step, (x, y) in enumerate(train_dataloader):",
        "for x in range(64):",
        "for x in torch.utils.data.DataLoader(ds, batch_size=32):",
    ],
)
def test_go506_growth_over_a_data_sized_loop_is_a_warning(header):
    from greenops_lint.rules.efficiency.go506_growing_concat_in_loop import MATERIAL_EXTRA_COPIES

    finding = _go506(header)
    assert finding.severity == "warning"
    assert finding.estimate.low >= MATERIAL_EXTRA_COPIES


@pytest.mark.parametrize(
    "header",
    [
        "for x in self.layers:",  # a module list
        "for ch_idx in range(input.shape[1]):",  # channels
        "for i in range(self.num_layers):",
        "for name, x in features.items():",
        "for x in reference_images:",  # 1-3 reference images
        "for tokens, coords, strength in appended_keyframes:",
        "for i, x in enumerate(['sobel_x', 'sobel_y', 'laplace', 'a', 'b', 'c', 'd', 'e']):",  # 8 edge templates
        "for i in range(iter_):",  # ~20 VAE chunks
        "for x in range(16):",
    ],
)
def test_go506_growth_over_a_few_items_is_info(header):
    from greenops_lint.rules.efficiency.go506_growing_concat_in_loop import MATERIAL_EXTRA_COPIES

    finding = _go506(header)
    assert finding.severity == "info"
    assert finding.estimate.low < MATERIAL_EXTRA_COPIES
    assert "below the materiality threshold" in finding.estimate.assumptions


def test_go506_few_items_are_sized_as_a_few():
    from greenops_lint.rules.efficiency.go506_growing_concat_in_loop import FEW_ITERATIONS, extra_copies

    finding = _go506("for x in self.layers:")
    assert (finding.estimate.low, finding.estimate.high) == tuple(extra_copies(n) for n in FEW_ITERATIONS)


def test_go506_data_loops_are_sized_as_data_and_outer_loops_multiply():
    from greenops_lint.rules.efficiency.go506_growing_concat_in_loop import DATA_ITERATIONS, extra_copies

    finding = _go506("for x in loader:")
    assert (finding.estimate.low, finding.estimate.high) == tuple(extra_copies(n) for n in DATA_ITERATIONS)
    # grown over a few heads per batch, never reset: the growth spans the data loop too
    source = """
import torch
acts = torch.empty(0)
for x in loader:
    for head in self.heads:
        acts = torch.cat([acts, head(x)])
"""
    (finding,) = lint_source(source, select=("GO506",))
    assert finding.severity == "warning" and finding.estimate.low == extra_copies(200)
    # reset on every batch: only the few heads count
    source = source.replace("    for head", "    acts = torch.empty(0)\n    for head")
    (finding,) = lint_source(source, select=("GO506",))
    assert finding.severity == "info"


# -- GO507 ---------------------------------------------------------------------

FP32_LOOP = """
import torch
model = Net().cuda()
for x, y in train_loader:
    loss = criterion(model(x.cuda()), y.cuda())
    loss.backward()
    optimizer.step()
"""


def test_go507_is_off_by_default_and_flags_one_loop_when_selected():
    assert not load_rules().rules["GO507"].default_enabled
    assert lines_of(lint_source(FP32_LOOP, select=("GO5",)), "GO507") == []
    assert only("GO507", FP32_LOOP) == [4]


@pytest.mark.parametrize(
    "extra",
    [
        "scaler = torch.amp.GradScaler()",
        "ctx = torch.autocast('cuda', dtype=torch.bfloat16)",
        "model = model.half()",
        "from accelerate import Accelerator\naccelerator = Accelerator()",
        "torch.set_float32_matmul_precision('medium')",
        "model = model.double()  # float64 on purpose",
    ],
)
def test_go507_any_mixed_precision_in_the_module_silences_it(extra):
    assert only("GO507", FP32_LOOP + extra + "\n") == []


def test_go507_float64_elsewhere_is_not_a_reason_to_skip():
    assert only(
        "GO507", FP32_LOOP + "acc = correct.double() / total\nt = torch.linspace(0, 1, 10, dtype=torch.float64)\n"
    ) == [4]


def test_go507_trainers():
    source = """
from transformers import TrainingArguments
import lightning as L
a = TrainingArguments("out")
b = TrainingArguments("out", fp16=True)
c = TrainingArguments("out", no_cuda=True)
d = TrainingArguments("out", deepspeed="ds.json")
e = L.Trainer(max_epochs=3)
f = L.Trainer(precision="16-mixed")
g = L.Trainer(accelerator="cpu")
"""
    assert only("GO507", source) == [4, 8]


def test_go507_test_files_and_short_runs_are_immaterial():
    source = """
import lightning.pytorch as pl
a = pl.Trainer(max_epochs=20, accelerator="gpu")
b = pl.Trainer(max_steps=50, accelerator="gpu")
c = pl.Trainer(accelerator="gpu", limit_train_batches=0.05)
d = pl.Trainer(accelerator="gpu", max_epochs=-1)
"""
    assert only("GO507", source, path="train.py") == [3, 6]
    assert only("GO507", source, path="tests/test_models/test_nbeats.py") == []


# -- GO508 ---------------------------------------------------------------------


def test_go508_jax_recompiles_only_new_function_objects():
    source = """
import jax
from functools import partial
for lr in lrs:
    a = jax.jit(step)
    b = jax.jit(lambda p: p - lr)
    c = jax.jit(partial(step, lr=lr))
    def local(p):
        return p * lr
    d = jax.jit(local)
"""
    assert only("GO508", source) == [6, 7, 10]


def test_go508_torch_compile_cache_hits_are_silent():
    source = """
import torch
for epoch in range(5):
    fast = torch.compile(model)
    same = torch.compile(lambda x: x.sin())
    scaled = torch.compile(lambda x: x * epoch)
    model = torch.compile(model)
for name in names:
    m = torch.compile(build(name))
"""
    assert only("GO508", source) == [6, 7]


def test_go508_tf_function_trace_and_guards():
    source = """
import tensorflow as tf
import torch
for epoch in range(3):
    step = tf.function(train_step)
    traced = torch.jit.trace(net, example)
    if step_fn is None:
        step_fn = tf.function(train_step)
for attempt in range(3):
    fn = tf.function(train_step)
"""
    findings = lint_source(source, select=("GO508",))
    assert [f.line for f in findings] == [5, 6]
    assert findings[0].estimate.metric == "repeated_work" and findings[0].estimate.low == 2.0


def test_go508_decorated_functions_defined_in_a_loop():
    source = """
import jax
import tensorflow as tf
for cfg in configs:
    @jax.jit
    def step(p):
        return p * cfg.lr
    @tf.function(jit_compile=True)
    def tf_step(x):
        return x
"""
    assert only("GO508", source) == [6, 9]  # reported on the `def` line


# -- shared --------------------------------------------------------------------


def test_every_efficiency_rule_is_documented_with_an_estimate_section():
    rules = [r for r in load_rules().rules.values() if r.family == "efficiency"]
    assert {f"GO50{i}" for i in range(1, 9)} | {"GO509", "GO510", "GO511", "GO513", "GO514"} | {
        "GO512",
        "GO515",
        "GO516",
        "GO517",
        "GO518",
    } <= {r.code for r in rules}
    for rule in rules:
        assert rule.section("Estimate"), rule.code
        assert len(rule.VALID) >= 1 and len(rule.INVALID) >= 1


def _estimate_figures():
    """Per rule, the figures its `## Estimate` section states, built from the
    module's named constants: the page and the findings cannot drift apart."""
    import sys

    from greenops_lint.finding import format_figure

    codes = ("GO501", "GO503", "GO504", "GO505", "GO506", "GO507", "GO508")
    go501, go503, go504, go505, go506, go507, go508 = (sys.modules[load_rules().rules[c].__module__] for c in codes)
    fewest, most = go508.ASSUMED_ITERATIONS
    return [
        ("GO501", f"{go501.TIME_FACTOR_LOW:g}x to {go501.TIME_FACTOR_HIGH:g}x"),
        ("GO503", f"{go503.TIME_FACTOR_LOW:g}x to {go503.TIME_FACTOR_HIGH:g}x"),
        ("GO504", f"{go504.TIME_FACTOR}x"),
        ("GO505", f"{go505.TIME_FACTOR_LOW:g}x to {go505.TIME_FACTOR_HIGH:g}x"),
        ("GO505", f"{go505.PEFT_SECONDS_EVERY_STEP} s"),
        ("GO505", f"{go505.PEFT_SECONDS_NEVER} s"),
        ("GO506", "-".join(format_figure(go506.extra_copies(n)) for n in go506.ASSUMED_ITERATIONS)),
        ("GO506", "-".join(str(n) for n in go506.ASSUMED_ITERATIONS)),
        ("GO506", "-".join(str(n) for n in go506.DATA_ITERATIONS)),
        ("GO506", "-".join(str(n) for n in go506.FEW_ITERATIONS)),
        ("GO506", "-".join(format_figure(go506.extra_copies(n)) for n in go506.DATA_ITERATIONS)),
        ("GO507", f"{go507.TIME_FACTOR_LOW:g}x to {go507.TIME_FACTOR_HIGH:g}x"),
        ("GO508", f"{fewest - 1}-{most - 1}"),
    ]


@pytest.mark.parametrize("code,figure", _estimate_figures())
def test_estimate_sections_state_the_module_constants(code, figure):
    assert figure in load_rules().rules[code].section("Estimate")


@pytest.mark.parametrize("name", ["GO502_pipeline_and_forward.py", "GO506_few_items.py", "GO501_rl_updates.py"])
def test_materiality_fixtures_mark_info_findings(name):
    """A marked line whose comment says `info` is reported at severity info, the others as warnings."""
    from conftest import FIXTURES

    path = FIXTURES / "efficiency" / name
    text = path.read_text()
    code = name[:5]
    findings = {f.line: f.severity for f in lint_source(text, select=(code,), path=str(path)) if f.code == code}
    marked = {
        number: ("info" if "info" in line.split("# expect:", 1)[1] else "warning")
        for number, line in enumerate(text.splitlines(), start=1)
        if f"# expect: {code}" in line
    }
    assert findings == marked


def test_go501_an_evaluation_called_from_the_training_loop_is_not_a_step():
    source = (
        TRAIN_HEAD
        + """
def evaluate(model, data):
    with torch.no_grad():
        total = 0
        for x in data:
            total += model(x.to(device)).sum()
        return total.item() / len(data)

for split in splits:
    for x, y in train_loader:
        loss = model(x.to(device)).mean()
        loss.backward()
        optimizer.step()
    val = evaluate(model, val_data)
"""
    )
    assert only("GO501", source) == []


def test_go501_an_opt_in_feature_behind_an_early_return_is_not_flagged():
    source = (
        TRAIN_HEAD
        + """
class Trainer:
    def _track_tokens(self, inputs):
        if self.args.include_num_input_tokens_seen == "no":
            return
        self.tokens_seen += inputs["input_ids"].ne(0).sum().item()

    def _log_loss(self, loss):
        self.history.append(loss.item())

    def train(self):
        for batch in self.train_loader:
            loss = self.model(**batch).loss
            loss.backward()
            self.optimizer.step()
            self._track_tokens(batch)
            self._log_loss(loss)
"""
    )
    assert only("GO501", source) == [13]


def test_materiality_thresholds_are_on_the_pages():
    import sys

    go502 = sys.modules[load_rules().rules["GO502"].__module__]
    go506 = sys.modules[load_rules().rules["GO506"].__module__]
    assert f"{go502.MATERIAL_BYTES // (1024 * 1024)} MiB" in load_rules().rules["GO502"].section("When it is material")
    assert f"at least {go506.MATERIAL_EXTRA_COPIES:g} extra copies" in load_rules().rules["GO506"].section(
        "When it is material"
    )
    assert load_rules().rules["GO501"].section("When it is material")


def test_go502_a_loop_over_a_few_items_in_a_once_per_call_function_is_info():
    source = """
import torch
def encode_prompt(prompt_embeds, tokenizers, text_encoders, device):
    masks = []
    for i in range(prompt_embeds.shape[0]):
        masks.append(torch.ones(prompt_embeds.shape[1]).to(device))
    for tokenizer, text_encoder in zip(tokenizers, text_encoders):
        masks.append(torch.zeros(77).to(device))
    return masks
"""
    assert _go502(source) == [(6, "info"), (8, "info")]


def test_go502_a_loop_over_option_values_that_reruns_the_script_is_info():
    # yolov5 export.py (scripts corpus): main() runs run() once per weights file the user named.
    source = """
import torch
def run(weights, device, imgsz=(640, 640)):
    model = load(weights, device)
    im = torch.zeros(1, 3, *imgsz).to(device)
    return export(model, im)

def main(opt):
    for opt.weights in (opt.weights if isinstance(opt.weights, list) else [opt.weights]):
        run(**vars(opt))
    for weights in opt.weights_list:
        run(weights, opt.device)
"""
    # the second loop iterates a list by a plain name: it may be long, so the copy stays material
    assert _go502(source) == [(5, "warning")]
    assert _go502(source.replace("    for weights in opt.weights_list:\n        run(weights, opt.device)\n", "")) == [
        (5, "info")
    ]


def test_go511_copies_in_an_evaluation_loop_are_info():
    # opacus examples/fsdp_example.py (scripts corpus): test() copies MNIST batches and reads .item() every batch.
    source = """
import torch
from torch.utils.data import DataLoader
device = torch.device("cuda")
train_loader = DataLoader(train_ds, batch_size=256, num_workers=4, pin_memory=True)
test_loader = DataLoader(test_ds, batch_size=256, num_workers=4, pin_memory=True)

def train(model, optimizer):
    for x, y in train_loader:
        x, y = x.to(device), y.to(device)
        model(x).sum().backward()
        optimizer.step()

def test(model):
    correct = 0
    for x, y in test_loader:
        correct += model(x.to(device)).argmax(1).eq(y.to(device)).sum().item()
    return correct

def score(model):
    with torch.no_grad():
        for x, y in test_loader:
            model(x.cuda())
"""
    findings = [(f.line, f.severity) for f in lint_source(source, select=("GO511",))]
    assert findings == [(10, "warning"), (10, "warning"), (17, "info"), (17, "info"), (23, "info")]
    evaluation = next(f for f in lint_source(source, select=("GO511",)) if f.line == 17)
    assert "in an evaluation loop" in evaluation.message


# -- GO514: the workers figure only where __getitem__ has per-sample work ------------------------

GO514_HEAD = """
import torch as T
from torch.utils.data import Dataset
from PIL import Image

"""


def test_go514_index_only_dataset_is_1x_info_not_the_workers_figure():
    """A __getitem__ that only indexes in-memory tensors and moves them leaves workers nothing
    to parallelise: GO509's 2.7x (a 5 ms per-sample transform) does not apply there."""
    source = (
        GO514_HEAD
        + """
class PairDataset(Dataset):
    def __init__(self, xs, ys, device="cuda"):
        self.xs, self.ys, self.device = xs, ys, device
    def __getitem__(self, i):
        return T.tensor(self.xs[i], device=self.device), self.ys[i].long().to(self.device)
"""
    )
    (finding,) = [f for f in lint_source(source, select=("GO514",)) if f.code == "GO514"]
    assert finding.severity == "info"
    assert (finding.estimate.low, finding.estimate.high) == (1.0, 1.0)
    assert finding.estimate.source == "derived"


@pytest.mark.parametrize(
    "body",
    [
        'return self.transform(Image.open(self.paths[i])).to("cuda")',  # a file read and a transform
        "return self.augment(self.xs[i]).cuda()",  # a transform
        "return load(self.paths[i]).cuda()",  # code the module does not show
    ],
)
def test_go514_per_sample_work_keeps_the_workers_figure(body):
    source = (
        GO514_HEAD
        + f"""
class Frames(Dataset):
    def __getitem__(self, i):
        {body}
"""
    )
    (finding,) = [f for f in lint_source(source, select=("GO514",)) if f.code == "GO514"]
    assert finding.severity == "warning"
    assert finding.estimate.high == 2.7 and finding.estimate.source == "cited"
