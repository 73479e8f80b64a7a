"""The rules from the performance guides (issue 20): GO404, GO512, GO515-GO518 beyond their own examples:
hardware-aware estimates, materiality, one finding per module, and the GO515 probe."""

from __future__ import annotations

import importlib.util
import textwrap

import pytest

from conftest import lint_source
from greenops_lint.plugins import load_rules
from greenops_lint.probe.plans import Host, SourceIndex, has_probe, make_plan

FP32_LOOP = """
import torch
from torch import nn
model = nn.Linear(1024, 1024).cuda()
for x, y in train_loader:
    loss = criterion(model(x.cuda()), y.cuda())
    loss.backward()
    optimizer.step()
for x, y in other_loader:
    loss = criterion(model(x.cuda()), y.cuda())
    loss.backward()
    optimizer.step()
"""


def only(code, source, **kwargs):
    return [f for f in lint_source(source, **kwargs) if f.code == code]


# -- GO404 ------------------------------------------------------------------------------------


def test_go404_one_finding_per_module_at_the_first_training_loop():
    findings = only("GO404", FP32_LOOP)
    assert [f.line for f in findings] == [5]


@pytest.mark.parametrize(
    "hardware,low,high,severity",
    [
        ("a100-80gb", 1.0, 2.25, "warning"),  # TF32 156 vs 19.5: capped at the t5-base end-to-end anchor
        ("h100-sxm", 1.0, 2.25, "warning"),
        ("a10", 1.0, 2.0, "warning"),  # TF32 peak only 2x FP32
        ("v100", 1.0, 1.0, "info"),  # no TF32 units
        ("t4", 1.0, 1.0, "info"),
        ("rtx-3090", 1.0, 1.0, "info"),  # TF32 rate equals FP32
        ("generic-gpu", 1.0, 2.25, "warning"),
    ],
)
def test_go404_estimate_follows_the_hardware_table(hardware, low, high, severity):
    (finding,) = only("GO404", FP32_LOOP, hardware=hardware)
    assert (finding.estimate.low, finding.estimate.high) == (low, high)
    assert finding.severity == severity
    assert finding.estimate.source == "cited"


def test_go404_convolutional_model_is_info():
    source = FP32_LOOP.replace("nn.Linear(1024, 1024)", "nn.Conv2d(3, 64, 3)")
    (finding,) = only("GO404", source, hardware="a100-80gb")
    assert finding.severity == "info"
    assert "cuDNN layers already use TF32" in finding.message


CONVNET_WITH_HEAD = """
import torch
from torch import nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 128, 3)
        self.fc = nn.Linear(128 * 30 * 30, 10)
model = Net().cuda()
for x, y in train_loader:
    loss = criterion(model(x.cuda()), y.cuda())
    loss.backward()
    optimizer.step()
"""


def test_go404_convnet_with_a_linear_head_is_a_convolutional_model():
    # opacus examples/fsdp_example.py, mnist.py (scripts corpus): a Linear head made the convnet a matmul model.
    (finding,) = only("GO404", CONVNET_WITH_HEAD, hardware="a100-80gb")
    assert finding.severity == "info" and "cuDNN layers already use TF32" in finding.message
    # An attention layer makes it a matmul model; a cuDNN LSTM does not (cudnn.allow_tf32 covers it).
    attention = CONVNET_WITH_HEAD.replace("nn.Linear(128 * 30 * 30, 10)", "nn.TransformerEncoderLayer(128, 8)")
    assert only("GO404", attention, hardware="a100-80gb")[0].severity == "warning"
    lstm = CONVNET_WITH_HEAD.replace("nn.Linear(128 * 30 * 30, 10)", "nn.LSTM(128, 512)")
    assert only("GO404", lstm, hardware="a100-80gb")[0].severity == "info"


TINY_TEXT_MODEL = """
import torch
from torch import nn
from transformers import BertTokenizerFast
tokenizer = BertTokenizerFast.from_pretrained("bert-base-cased")
class Net(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, 16)
        self.fc1 = nn.Linear(16, 16)
        self.fc2 = nn.Linear(16, {out})
model = Net(len(tokenizer)).to("cuda")
loader = DataLoader(ds, batch_size=64)
for x, y in loader:
    loss = criterion(model(x.cuda()), y.cuda())
    loss.backward()
    optimizer.step()
"""


def test_go404_tiny_model_of_literal_layers_is_info():
    # opacus examples/imdb.py (scripts corpus): Embedding(vocab, 16) -> Linear(16, 16) -> Linear(16, 2), batch 64.
    (finding,) = only("GO404", TINY_TEXT_MODEL.format(out=2), hardware="a100-80gb")
    assert finding.severity == "info" and "tiny model" in finding.message
    for wide in ("1024 * 1024", "num_classes"):  # a big layer, or a size the module does not state
        (finding,) = only("GO404", TINY_TEXT_MODEL.format(out=wide), hardware="a100-80gb")
        assert finding.severity == "warning"
    pretrained = TINY_TEXT_MODEL.format(out=2) + 'encoder = AutoModel.from_pretrained("bert-base-cased")\n'
    assert only("GO404", pretrained, hardware="a100-80gb")[0].severity == "warning"


def test_go404_h100_figure_says_it_was_measured_on_an_a100():
    # The 2.25x is t5-base on an A100 (transformers#15026): not an H100 measurement.
    (finding,) = only("GO404", FP32_LOOP, hardware="h100-sxm")
    assert "up to 2.25x (t5-base on A100)" in finding.message
    assert "on NVIDIA H100" not in finding.message
    assert (
        "measured on an A100" in finding.estimate.basis and "not measured on NVIDIA H100 SXM" in finding.estimate.basis
    )
    # Capped by the peak ratio, the figure is the GPU's own datasheet ratio.
    (finding,) = only("GO404", FP32_LOOP, hardware="a10")
    assert "up to 2x on NVIDIA A10 (its TF32:FP32 peak ratio)" in finding.message


CUDNN_OFF = """
import torch
from torch import nn
torch.set_float32_matmul_precision("high")
torch.backends.cudnn.allow_tf32 = False
model = {model}.cuda()
for x, y in train_loader:
    loss = criterion(model(x.cuda()), y.cuda())
    loss.backward()
    optimizer.step()
"""


def test_go404_cudnn_switch_has_its_own_words_and_estimate():
    # The cuDNN flag governs convolutions and RNNs, not the matmuls the t5-base anchor measured.
    (finding,) = only("GO404", CUDNN_OFF.format(model="nn.Linear(1024, 1024)"), hardware="a100-80gb")
    assert finding.line == 5 and "switches TF32 off for cuDNN convolutions/RNNs" in finding.message
    assert "matmuls" not in finding.message.split("(")[0]
    assert (finding.estimate.low, finding.estimate.high, finding.estimate.source) == (1.0, 1.0, "derived")
    assert finding.severity == "info"
    conv = CUDNN_OFF.format(model="nn.Sequential(nn.Conv2d(3, 256, 3), nn.Conv2d(256, 256, 3))")
    (finding,) = only("GO404", conv, hardware="a100-80gb")
    assert (finding.estimate.low, finding.estimate.high, finding.estimate.source) == (1.0, 8.0, "datasheet")
    assert "upper bound" in finding.message and "upper bound" in finding.estimate.basis
    assert "t5-base" not in finding.estimate.basis and finding.severity == "warning"
    (finding,) = only("GO404", conv, hardware="t4")
    assert finding.estimate.high == 1.0 and finding.severity == "info"
    lstm = CUDNN_OFF.format(model="nn.LSTM(512, 1024)")
    assert only("GO404", lstm, hardware="h100-sxm")[0].estimate.high == 7.38


def test_go404_cudnn_and_matmul_switches_are_reported_apart():
    # Switching cuDNN's TF32 on does not switch the matmuls' on, and the reverse.
    cudnn_on = FP32_LOOP.replace("model =", "torch.backends.cudnn.allow_tf32 = True\nmodel =")
    (finding,) = only("GO404", cudnn_on, hardware="a100-80gb")
    assert "runs its float32 matmuls without TF32" in finding.message
    both = CUDNN_OFF.format(model="nn.Conv2d(3, 256, 3)").replace(
        'torch.set_float32_matmul_precision("high")', "torch.backends.cuda.matmul.allow_tf32 = False"
    )
    findings = only("GO404", both, hardware="a100-80gb")
    assert [(f.line, f.estimate.source) for f in findings] == [(4, "cited"), (5, "datasheet")]
    # Its cuDNN layers do not "already use TF32" once the module switches them off.
    assert "already use TF32" not in findings[0].message and findings[0].severity == "info"


def test_go404_global_switch_on_a_convnet_gets_the_cudnn_estimate():
    source = CUDNN_OFF.format(model="nn.Conv2d(3, 256, 3)").replace(
        'torch.set_float32_matmul_precision("high")\ntorch.backends.cudnn.allow_tf32 = False',
        'torch.backends.fp32_precision = "ieee"',
    )
    (finding,) = only("GO404", source, hardware="a100-80gb")
    assert "the float32 matmuls and cuDNN convolutions/RNNs" in finding.message
    assert (finding.estimate.high, finding.estimate.source) == (8.0, "datasheet")


def test_go404_silent_with_hf_tf32_and_lightning_precision():
    for line in ("args = TrainingArguments(output_dir='o', tf32=True)", "trainer = L.Trainer(precision='32-true')"):
        assert not only("GO404", FP32_LOOP + line + "\n")


def test_go404_silent_in_tests():
    assert not only("GO404", FP32_LOOP, path="tests/test_training.py")


# -- GO512 ------------------------------------------------------------------------------------


def test_go512_is_info_and_skips_a_helper_called_under_a_flag_only():
    source = """
    import torch

    def seed_all(seed):
        torch.manual_seed(seed)
        torch.backends.cudnn.deterministic = True

    def main(args):
        if args.reproducible:
            seed_all(args.seed)
        model = Net().cuda()
        for x, y in loader:
            criterion(model(x.cuda()), y.cuda()).backward()
            optimizer.step()
    """
    assert not only("GO512", source)
    (finding,) = only(
        "GO512", source.replace("        if args.reproducible:\n            seed_all", "        seed_all")
    )
    assert finding.severity == "info" and finding.line == 6


def test_go512_lightning_trainer_deterministic():
    source = """
    import lightning as L
    import torch
    trainer = L.Trainer(accelerator="cuda", deterministic=True)
    trainer.fit(model, loader)
    """
    (finding,) = only("GO512", source)
    assert "Trainer(deterministic=True)" in finding.message


# -- GO515 ------------------------------------------------------------------------------------


def test_go515_itertuples_is_info_unless_repeated_per_epoch():
    once = """
    import pandas as pd
    df = pd.read_csv("x.csv")
    for row in df.itertuples():
        total += row.a * row.b
    """
    (finding,) = only("GO515", once)
    assert finding.severity == "info"
    assert finding.estimate.source == "measured on CPU" and "measured on CPU" in finding.message
    per_epoch = """
    import pandas as pd
    df = pd.read_csv("x.csv")
    for epoch in range(10):
        for row in df.itertuples():
            total += row.a * row.b
        train_one_epoch(model, loader)
    """
    (finding,) = only("GO515", per_epoch)
    assert finding.severity == "warning" and "epoch loop" in finding.message


def test_go515_helper_function_for_apply_one_call_deep():
    source = """
    import pandas as pd
    def log_ratio(row):
        return row.get("clicks", 0) / (row["views"] + 1)
    def io_per_row(row):
        return open(row["path"]).read().count("x") * 2
    df = pd.read_parquet("events.parquet")
    df["ctr"] = df.apply(log_ratio, axis=1)
    df["n"] = df.apply(io_per_row, axis="columns")
    """
    assert [f.line for f in only("GO515", source)] == [8]


# -- GO516 -------------------------------------------------------------------------------------

EAGER_TRAINING = """
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments
model = AutoModelForCausalLM.from_pretrained("gpt2", attn_implementation="eager")
Trainer(model=model, args=TrainingArguments("out"{precision}), train_dataset=ds).train()
"""


def test_go516_estimate_says_batch_1_fp16_and_marks_fp32_as_not_measured():
    """The SDPA anchors ran batch size 1 in fp16; fp32 cannot use the flash kernel."""
    (half,) = only("GO516", EAGER_TRAINING.format(precision=", bf16=True"))
    assert "batch size 1" in half.estimate.basis and "fp16" in half.estimate.basis
    assert not any("fp32" in a for a in half.estimate.assumptions)
    (full,) = only("GO516", EAGER_TRAINING.format(precision=""))
    assert any("fp32" in a and "flash" in a for a in full.estimate.assumptions)


# -- GO517 / GO518 -------------------------------------------------------------------------------


def test_go517_and_go518_follow_a_pipeline_built_in_a_helper():
    source = """
    import tensorflow as tf
    def make(files):
        ds = tf.data.TFRecordDataset(files)
        ds = ds.map(parse_example)
        return ds.batch(32)
    train = make(files)
    model.fit(train, epochs=3)
    """
    assert [f.line for f in only("GO518", source)] == [5]
    assert [f.line for f in only("GO517", source)] == [6]


def test_go517_is_info_unless_the_file_turns_prefetch_injection_off():
    """TensorFlow 2.12+ injects a prefetch after a synchronous last step (inject_prefetch,
    default True): a missing .prefetch() is material only where that is switched off."""
    source = """
    import tensorflow as tf
    ds = tf.data.TFRecordDataset(files).map(parse, num_parallel_calls=tf.data.AUTOTUNE).batch(64)
    model.fit(ds, epochs=10)
    """
    (default,) = only("GO517", source)
    assert default.severity == "info" and "before 2.12" in " ".join(default.estimate.assumptions)
    off = source.replace(
        "model.fit",
        "options = tf.data.Options()\n    options.experimental_optimization.inject_prefetch = False\n    model.fit",
    )
    (material,) = only("GO517", off)
    assert material.severity == "warning"


def test_go518_python_function_map_gains_about_1x_at_info():
    """tf.py_function/tf.numpy_function hold the GIL ("will preclude efficient parallelization"):
    num_parallel_calls gains ~1x there, so the finding is info, not an 8x input-pipeline claim."""
    source = """
    import tensorflow as tf
    def load(path):
        image = tf.numpy_function(read_with_pil, [path], tf.uint8)
        return tf.image.random_flip_left_right(image)
    ds = tf.data.TFRecordDataset(files).map(load)
    ds = tf.data.TFRecordDataset(files).map(lambda r: tf.py_function(parse, [r], tf.float32))
    """
    findings = only("GO518", source)
    assert [f.line for f in findings] == [6, 7]
    for finding in findings:
        assert finding.severity == "info"
        assert finding.estimate.high == 1.0 and "GIL" in finding.estimate.basis


def test_go518_estimate_is_a_linear_best_case_capped_by_a_literal_cycle_length():
    source = """
    import tensorflow as tf
    def parse(record):
        return tf.image.random_flip_left_right(tf.io.decode_jpeg(record))
    ds = tf.data.TFRecordDataset(files).map(parse)
    a = tf.data.Dataset.list_files(pattern).interleave(tf.data.TFRecordDataset, cycle_length=4)
    b = tf.data.Dataset.list_files(pattern).interleave(tf.data.TFRecordDataset, 1)
    c = tf.data.Dataset.list_files(pattern).interleave(tf.data.TFRecordDataset, cycle_length=n)
    """
    by_line = {f.line: f for f in only("GO518", source)}
    assert by_line[5].estimate.high == 8.0 and "best case" in by_line[5].estimate.basis
    assert by_line[5].severity == "warning"
    assert by_line[6].estimate.high == 4.0 and "cycle_length=4" in by_line[6].estimate.basis
    assert by_line[7].estimate.high == 1.0 and by_line[7].severity == "info"
    assert by_line[8].estimate.high == 8.0


def test_go518_fix_uses_the_tensorflow_alias(tmp_path):
    from greenops_lint.config import Config
    from greenops_lint.fixes import fix_paths

    path = tmp_path / "pipe.py"
    path.write_text("import tensorflow as T\nds = T.data.TextLineDataset(f).map(decode_line)\n")
    fix_paths(
        [str(path)], Config(root=tmp_path, select=("GO518",)), {"GO518": load_rules().rules["GO518"]}, unsafe=False
    )
    assert "map(decode_line, num_parallel_calls=T.data.AUTOTUNE)" in path.read_text()


# -- the GO515 probe -------------------------------------------------------------------------------

PANDAS = importlib.util.find_spec("pandas") is not None
PREP = textwrap.dedent(
    """
    import pandas as pd
    df = pd.read_csv("x.csv")
    df["s"] = df.apply(lambda r: r["a"] * 2 + r["b"], axis=1)
    """
)


def test_go515_has_a_cpu_probe_plan():
    assert has_probe(load_rules().rules["GO515"])
    finding = only("GO515", PREP)[0]
    plan = make_plan(finding, Host(), [finding], SourceIndex("prep.py", PREP))
    assert plan.bench == "pandas_rows" and plan.params["method"] == "apply"
    assert plan.sized == "default" and "rows" in plan.sizes
    assert plan.claim is not None and plan.claim.metric == "time_factor"


@pytest.mark.skipif(not PANDAS, reason="pandas is not installed")
def test_go515_probe_bench_measures_a_large_ratio():
    torch = pytest.importorskip("torch")  # noqa: F841 - the bench module imports it
    from greenops_lint.probe.benches import run

    cpu = {}
    for variant in ("before", "after"):
        out = run(
            {
                "bench": "pandas_rows",
                "variant": variant,
                "params": {"method": "apply", "rows": 2000, "min_time": 0.05, "min_samples": 2},
            }
        )
        cpu[variant] = min(out["series"]["pass"]["cpu"])
    assert cpu["before"] > 5 * cpu["after"]


def test_go515_probe_bench_is_not_applicable_without_pandas(monkeypatch):
    pytest.importorskip("torch")
    import builtins

    from greenops_lint.probe.benches import run

    real_import = builtins.__import__

    def no_pandas(name, *args, **kwargs):
        if name == "pandas":
            raise ImportError("no pandas")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    out = run({"bench": "pandas_rows", "variant": "before", "params": {"method": "apply", "rows": 10}})
    assert out == {"not_applicable": "pandas is not installed"}


def test_go404_small_batches_of_a_model_without_attention_are_info():
    source = FP32_LOOP + "train_loader = DataLoader(ds, batch_size=32)\n"
    (finding,) = only("GO404", source, hardware="a100-80gb")
    assert finding.severity == "info" and "gains little" in finding.message
    heavy = source.replace("nn.Linear(1024, 1024)", "nn.TransformerEncoderLayer(512, 8)")
    (finding,) = only("GO404", heavy, hardware="a100-80gb")
    assert finding.severity == "warning"
