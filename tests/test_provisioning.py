"""GO3xx provisioning rules: edge cases, decisions, options and their config."""

from __future__ import annotations

import textwrap

import pytest

from conftest import codes, lint_source
from greenops_lint.finding import SOURCE_CITED, SOURCE_CPU, SOURCE_DERIVED
from greenops_lint.plugins import load_rules


def lines_of(findings, code):
    return [f.line for f in findings if f.code == code]


# -- GO301 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr",
    [
        "os.cpu_count()",
        "mp.cpu_count()",
        "ncpu()",
        "psutil.cpu_count()",
        "psutil.cpu_count(logical=True)",
        "len(os.sched_getaffinity(0))",
        "os.cpu_count() * 2",
        "2 * os.cpu_count()",
        "os.cpu_count() + 4",
        "os.cpu_count() or 1",
        "max(1, os.cpu_count())",
        "int(os.cpu_count())",
        "0 if debug else os.cpu_count()",
    ],
)
def test_go301_all_cpu_forms_are_flagged(expr):
    source = f"""
    import os
    import multiprocessing as mp
    from multiprocessing import cpu_count as ncpu
    import psutil
    from torch.utils.data import DataLoader
    loader = DataLoader(train_ds, batch_size=32, num_workers={expr})
    """
    assert lines_of(lint_source(source), "GO301") == [7]


@pytest.mark.parametrize(
    "expr",
    [
        "min(8, os.cpu_count())",
        "os.cpu_count() // 2",
        "os.cpu_count() // world_size",
        "int(os.cpu_count() * 0.5)",
        "os.cpu_count() / 4",
        # The borderline decision: subtracting a constant reserves cores on
        # purpose, so it is not a finding (documented on the rule page).
        "os.cpu_count() - 1",
        "max(1, os.cpu_count() - 2)",
        "psutil.cpu_count(logical=False)",
        "joblib.cpu_count()",
        "args.workers",
        "4",
    ],
)
def test_go301_capped_reduced_and_unknown_counts_are_not_flagged(expr):
    source = f"""
    import os
    import joblib
    import psutil
    from torch.utils.data import DataLoader
    loader = DataLoader(train_ds, batch_size=32, num_workers={expr})
    """
    assert "GO301" not in codes(lint_source(source))


def test_go301_borderline_max_one_minus_two_is_documented():
    from greenops_lint.rules.provisioning.go301_all_cpus_as_parallelism import AllCpusAsParallelism

    assert "max(1, os.cpu_count() - 2)" in AllCpusAsParallelism.doc()


def test_go301_constant_defined_far_above_is_reported_at_the_use_site():
    filler = "\n".join(f"x{i} = {i}" for i in range(60))
    source = (
        "import os\nfrom torch.utils.data import DataLoader\nNUM_WORKERS = os.cpu_count()\n"
        + filler
        + "\n\ndef main():\n    return DataLoader(ds, batch_size=8,\n                      num_workers=NUM_WORKERS)\n"
    )
    findings = [f for f in lint_source(source) if f.code == "GO301"]
    assert [f.line for f in findings] == [source.count("\n")]
    assert "NUM_WORKERS (= os.cpu_count())" in findings[0].message


def test_go301_rebinding_to_a_capped_value_is_followed():
    source = """
    import os
    from torch.utils.data import DataLoader
    workers = os.cpu_count()
    workers = min(workers, 8)
    loader = DataLoader(ds, num_workers=workers)
    """
    assert "GO301" not in codes(lint_source(source))


def test_go301_partial_and_star_star_dict():
    source = """
    import functools
    import os
    from torch.utils.data import DataLoader
    make = functools.partial(DataLoader, batch_size=32, num_workers=os.cpu_count())
    quiet = DataLoader(ds, **dict(num_workers=os.cpu_count()))
    cfg = {"num_workers": os.cpu_count()}
    also_quiet = DataLoader(ds, **cfg)
    """
    assert lines_of(lint_source(source), "GO301") == [5]


def test_go301_tf_autotune_is_never_a_finding():
    source = """
    import tensorflow as tf
    AUTOTUNE = tf.data.AUTOTUNE
    ds = ds.map(f, num_parallel_calls=AUTOTUNE).prefetch(tf.data.experimental.AUTOTUNE)
    ds = tf.data.TFRecordDataset(files, num_parallel_reads=tf.data.AUTOTUNE)
    """
    assert [c for c in codes(lint_source(source)) if c.startswith("GO3")] == []


def test_go301_env_forms():
    source = """
    import os
    from os import cpu_count
    os.environ["OMP_NUM_THREADS"] = str(cpu_count())
    os.environ.update({"MKL_NUM_THREADS": str(cpu_count())})
    os.environ.update(OPENBLAS_NUM_THREADS=str(cpu_count()))
    os.putenv("NUMEXPR_NUM_THREADS", str(cpu_count()))
    os.environ["OMP_NUM_THREADS"] = str(cpu_count() // 2)
    os.environ["WORLD"] = str(cpu_count())
    """
    assert lines_of(lint_source(source), "GO301") == [4, 5, 6, 7]


def test_go301_workers_keyword_only_on_training_entry_points():
    source = """
    import os
    model.fit(gen, workers=os.cpu_count(), use_multiprocessing=True)
    uvicorn.run(app, workers=os.cpu_count())
    pool = ProcessPoolExecutor(max_workers=os.cpu_count())
    """
    assert lines_of(lint_source(source), "GO301") == [3]


def test_go301_message_says_what_it_costs():
    source = """
    import os
    from torch.utils.data import DataLoader
    loader = DataLoader(ds, num_workers=os.cpu_count())
    """
    (finding,) = lint_source(source)
    assert "one worker per logical CPU of the host" in finding.message
    estimate = finding.estimate
    assert (estimate.metric, estimate.low, estimate.high, estimate.unit) == (
        "time_factor",
        1.0,
        1.4,
        "x data-loading time",
    )
    assert "1.3-1.5x the memory" in estimate.basis


# -- GO302 / GO303 ---------------------------------------------------------------

NESTED = """
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GridSearchCV
search = GridSearchCV(RandomForestClassifier(n_jobs=-1), {"max_depth": [4, 8]}, n_jobs=-1)
"""


def test_go302_nested_inline_is_reported_once_and_not_as_go303():
    findings = lint_source(NESTED)
    assert [(f.code, f.line) for f in findings if f.code.startswith("GO30")] == [("GO302", 4)]
    assert "cores x cores threads" in findings[0].message


def test_go302_estimator_bound_earlier_reported_at_the_outer_call():
    source = """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import GridSearchCV
    rf = RandomForestClassifier(n_jobs=-1)
    x = 1
    search = GridSearchCV(
        rf,
        {"max_depth": [4, 8]},
        n_jobs=-1,
    )
    single = RandomForestClassifier(n_jobs=-1)
    """
    findings = lint_source(source)
    assert [(f.code, f.line) for f in findings if f.code.startswith("GO30")] == [("GO302", 6), ("GO303", 11)]


def test_go303_is_on_by_default(registry):
    # Issue 17: "maxed-out workers" are mission-named waste; on by default since the triage.
    assert registry.rules["GO303"].default_enabled is True
    assert registry.rules["GO303"].severity == "warning"
    source = "from sklearn.svm import SVC\nfrom sklearn.model_selection import cross_val_score\ns = cross_val_score(SVC(), X, y, n_jobs=-1)\n"
    assert codes(lint_source(source, select=("GO3",))) == ["GO303"]


@pytest.mark.parametrize(
    "call,expected",
    [
        ("LogisticRegression(n_jobs=-1)", []),  # lbfgs: one multinomial problem, n_jobs ignored
        ("LogisticRegression(solver='liblinear', multi_class='ovr', n_jobs=-1)", []),
        ("LogisticRegression(multi_class='ovr', n_jobs=-1)", ["GO303"]),
        ("LinearRegression(n_jobs=-1)", []),  # only several sparse targets use it
        ("LinearRegression(positive=True, n_jobs=-1)", ["GO303"]),
    ],
)
def test_go303_skips_estimators_that_ignore_n_jobs(call, expected):
    source = f"from sklearn.linear_model import LinearRegression, LogisticRegression\nm = {call}\n"
    assert codes(lint_source(source, select=("GO303",))) == expected


def test_go303_noqa_applies_to_deferred_reports():
    source = """
    from sklearn.ensemble import RandomForestClassifier
    rf = RandomForestClassifier(
        n_jobs=-1,  # noqa: GO303
    )
    rf2 = RandomForestClassifier(n_jobs=-1)
    """
    assert lines_of(lint_source(source), "GO303") == [6]


# -- GO304 options ---------------------------------------------------------------

LOADERS = """
from torch.utils.data import DataLoader
a = DataLoader(ds, num_workers=12)
b = DataLoader(ds, num_workers=24)
c = DataLoader(ds, num_workers=4, prefetch_factor=6)
d = DataLoader(ds, num_workers=4, prefetch_factor=12)
"""


def test_go304_defaults():
    assert lines_of(lint_source(LOADERS), "GO304") == [4, 6]


def test_go304_max_workers_option():
    findings = lint_source(LOADERS, options=(("GO304", (("max-workers", 8),)),))
    assert lines_of(findings, "GO304") == [3, 4, 6]
    assert "max-workers=8" in [f for f in findings if f.line == 3][0].message
    assert lines_of(lint_source(LOADERS, options=(("GO304", (("max-workers", 32),)),)), "GO304") == [6]


def test_go304_max_prefetch_factor_option():
    options = (("GO304", (("max-prefetch-factor", 4),)),)
    assert lines_of(lint_source(LOADERS, options=options), "GO304") == [4, 5, 6]
    options = (("GO304", (("max-prefetch-factor", 16),)),)
    assert lines_of(lint_source(LOADERS, options=options), "GO304") == [4]


def test_go304_options_are_documented_on_the_rule_page():
    from greenops_lint.docs import render_page

    page = render_page(load_rules().rules["GO304"])
    assert "`max-workers` | int | `16`" in page
    assert "`max-prefetch-factor` | int | `8`" in page


def test_go304_batch_scaled_workers():
    source = """
    from torch.utils.data import DataLoader
    bs = 256
    nw = bs // 4
    a = DataLoader(ds, batch_size=bs, num_workers=bs)
    b = DataLoader(ds, batch_size=bs, num_workers=nw)
    c = DataLoader(ds, batch_size=bs, num_workers=min(bs, 8))
    """
    findings = lint_source(source)
    assert lines_of(findings, "GO304") == [5, 6]
    assert "scales the worker count with the batch size" in findings[0].message


def _project(tmp_path, monkeypatch, rules_table: str):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.greenops-lint]\n\n[tool.greenops-lint.rules.GO304]\n" + rules_table)
    (tmp_path / "train.py").write_text(
        textwrap.dedent(
            """
            from torch.utils.data import DataLoader
            loader = DataLoader(train_ds, batch_size=32, num_workers=12, prefetch_factor=4)
            """
        )
    )


def test_go304_config_from_pyproject(tmp_path, monkeypatch, cli):
    _project(tmp_path, monkeypatch, "max-workers = 8\nmax-prefetch-factor = 2\n")
    result = cli("check", "train.py")
    assert result.exit_code == 1
    assert [line.split()[1] for line in result.stdout.splitlines()] == ["GO304", "GO304"]
    _project(tmp_path, monkeypatch, "max-workers = 16\n")
    assert cli("check", "train.py").exit_code == 0


@pytest.mark.parametrize(
    "table,needle",
    [
        ('max-workers = "many"\n', "option 'max-workers' must be int, not"),
        ("max-workers = 8.5\n", "option 'max-workers' must be int"),
        ("max-workers = true\n", "option 'max-workers' must be int"),
        ("max-prefetch-factor = [4]\n", "option 'max-prefetch-factor' must be int"),
        ("max-worker = 8\n", "unknown option 'max-worker'"),
    ],
)
def test_go304_wrong_config_exits_2(tmp_path, monkeypatch, cli, table, needle):
    _project(tmp_path, monkeypatch, table)
    result = cli("check", "train.py")
    assert result.exit_code == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


# -- GO305 ---------------------------------------------------------------------


def test_go305_training_signal_is_required_for_dataloaders():
    source = """
    from torch.utils.data import DataLoader
    a = DataLoader(ds, batch_size=len(ds))
    b = DataLoader(ds, batch_size=len(ds), shuffle=True)
    train_loader = DataLoader(ds, batch_size=len(ds))
    test_loader = DataLoader(ds, batch_size=len(ds), shuffle=True)
    c = DataLoader(train_ds.to(device), batch_size=len(train_ds.to(device)), shuffle=True)
    """
    assert lines_of(lint_source(source), "GO305") == [4, 7]


def test_go305_tfds_full_split_is_not_a_finding():
    source = """
    import tensorflow_datasets as tfds
    train = tfds.load("mnist", split="train", batch_size=-1)
    """
    assert "GO305" not in codes(lint_source(source))


# -- GO306 ---------------------------------------------------------------------


def test_go306_needs_a_training_module():
    inference = """
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained("bert-base-uncased")
    batch = tokenizer(texts, padding="max_length", max_length=128, return_tensors="pt")
    """
    assert "GO306" not in codes(lint_source(inference))
    training = inference + "optimizer = AdamW(model.parameters())\n"
    assert lines_of(lint_source(training), "GO306") == [4]


@pytest.mark.parametrize("marker", ["import jax", "import torch_xla", "import tensorflow as tf", "import onnx"])
def test_go306_static_shape_modules_are_not_flagged(marker):
    source = f"""
    {marker}
    from transformers import Trainer
    enc = tokenizer(texts, padding="max_length", max_length=128)
    """
    assert "GO306" not in codes(lint_source(source))


def test_go306_only_tokenizer_calls():
    source = """
    from transformers import Trainer
    out = F.pad(x, padding="max_length")
    enc = tokenizer(texts, padding="max_length", max_length=64)
    """
    findings = lint_source(source)
    assert lines_of(findings, "GO306") == [4]
    assert "64 tokens" in [f for f in findings if f.code == "GO306"][0].message


# -- family-wide -------------------------------------------------------------------


def test_every_go3_rule_has_three_invalid_and_three_valid_examples():
    rules = [r for r in load_rules().rules.values() if r.family == "provisioning"]
    assert sorted(r.code for r in rules) == ["GO301", "GO302", "GO303", "GO304", "GO305", "GO306"]
    for rule in rules:
        invalid, valid = rule.examples()
        assert len(invalid) >= 3 and len(valid) >= 3, rule.code
        for snippet in invalid:
            assert any(t in snippet for t in rule.tokens), (rule.code, snippet)


def test_every_go3_rule_pins_an_invalid_example():
    for rule in (r for r in load_rules().rules.values() if r.family == "provisioning"):
        pinned = [e for e in rule.invalid_examples() if e.line is not None and e.message is not None]
        assert pinned, rule.code
        if rule.fixable:
            assert any(e.fixed is not None for e in pinned), rule.code


def test_estimate_sections_quote_the_estimate_constants():
    """The figures a page documents are the constants the estimates use."""
    from greenops_lint.rules.provisioning import _shared as shared
    from greenops_lint.rules.provisioning import go304_oversized_worker_settings as go304
    from greenops_lint.rules.provisioning import go306_pad_to_max_length as go306

    rules = load_rules().rules
    worker = f"{shared.WORKER_TIME_LOW:.1f}-{shared.WORKER_TIME_HIGH:.1f}x data-loading time"
    memory = f"{shared.WORKER_MEMORY_LOW:g}-{shared.WORKER_MEMORY_HIGH:g}x the memory"
    threads = f"{shared.THREAD_TIME_HIGH:g}x"
    torch_threads = f"{shared.TORCH_THREAD_TIME_HIGH:g}x CPU compute time"
    torch_times = f"{shared.TORCH_ONE_THREAD_MS:g} ms with 1 thread and {shared.TORCH_OVERSUBSCRIBED_MS:g} ms with 2"
    expected = {
        "GO301": [worker, memory, torch_threads, torch_times],
        "GO302": [f"{threads} search time", "xgboost's measurement of host-sized threads"],
        "GO303": [f"{threads} CPU compute time", "xgboost's measurement of host-sized threads"],
        "GO304": [worker, f"prefetch_factor / {go304.TORCH_PREFETCH_FACTOR} times"],
        "GO306": [f"{go306.PAD_TIME_LOW:.1f}-{go306.PAD_TIME_HIGH:.1f}x step time"],
    }
    for code, figures in expected.items():
        section = " ".join(rules[code].section("Estimate").split())
        for figure in figures:
            assert figure in section, (code, figure)


def test_go305_loader_only_used_through_next_iter_is_not_training():
    source = """
    from torch.utils.data import DataLoader
    stats_loader = DataLoader(trainset, batch_size=len(trainset), shuffle=True, num_workers=2)
    images, labels = next(iter(stats_loader))
    mean = images.mean()
    X, y = next(iter(DataLoader(trainset, batch_size=len(trainset), shuffle=True)))
    train_loader = DataLoader(trainset, batch_size=len(trainset), shuffle=True)
    first = next(iter(train_loader))
    for xb, yb in train_loader:
        pass
    """
    assert lines_of(lint_source(source), "GO305") == [7]


def test_generic_num_workers_counts_only_on_loader_like_calls():
    source = """
    import os
    import functools
    from torch.utils.data import DataLoader
    pool = Multithreading(num_workers=os.cpu_count(), target=[f])
    prots = parallel_tasks_run(read, tasks, num_workers=32, use_process=False)
    out = dask.compute(*jobs, scheduler="processes", num_workers=os.cpu_count())
    a = build_dataloader(cfg, num_workers=os.cpu_count())
    b = MNISTDataModule(batch_size=64, num_workers=os.cpu_count())
    c = functools.partial(DataLoader, num_workers=64)
    d = get_train_loader(ds, num_workers=48)
    """
    findings = lint_source(source)
    assert lines_of(findings, "GO301") == [8, 9]
    assert lines_of(findings, "GO304") == [10, 11]


def test_go301_parameter_defaults_only_where_a_loader_is_built():
    source = """
    import os
    import multiprocessing as mp
    from torch.utils.data import DataLoader

    def make_loader(ds, num_workers=os.cpu_count()):
        return DataLoader(ds, batch_size=32, num_workers=num_workers)

    def process_precursors(items, num_workers=mp.cpu_count()):
        with mp.Pool(num_workers) as pool:
            return pool.map(f, items)

    class LitData:
        def __init__(self, data_dir, num_workers: int = mp.cpu_count()):
            self.num_workers = num_workers

        def train_dataloader(self):
            return DataLoader(self.train, num_workers=self.num_workers)
    """
    assert lines_of(lint_source(source), "GO301") == [6, 14]


def test_go301_argparse_defaults_only_in_ml_modules():
    ml = """
    import argparse, os
    import torch
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    """
    assert lines_of(lint_source(ml), "GO301") == [5]
    server = ml.replace("import torch", "import flask")
    assert "GO301" not in codes(lint_source(server))


def test_go305_deliberate_full_batch_is_not_flagged():
    commented = """
    from torch.utils.data import DataLoader, TensorDataset
    train_loader = DataLoader(TensorDataset(X_train, y_train), batch_size=X_train.shape[0], shuffle=False)  # full batch
    model.fit(
        X_train,
        y_train,
        batch_size=X_train.shape[0],  # train on all 16 samples at once
    )
    """
    assert "GO305" not in codes(lint_source(commented))
    lbfgs = """
    import torch
    from torch.utils.data import DataLoader
    optimizer = torch.optim.LBFGS(model.parameters())
    train_loader = DataLoader(train_ds, batch_size=len(train_ds), shuffle=True)
    """
    assert "GO305" not in codes(lint_source(lbfgs))


def test_go306_no_grad_and_diffusion_text_encoders_are_not_flagged():
    no_grad = """
    import torch
    from transformers import Trainer
    with torch.no_grad():
        enc = tokenizer(prompts, padding="max_length", max_length=77, return_tensors="pt")
    """
    assert "GO306" not in codes(lint_source(no_grad))
    diffusion = """
    from diffusers import UNet2DConditionModel
    optimizer = torch.optim.AdamW(unet.parameters())
    ids = tokenizer(captions, max_length=tokenizer.model_max_length, padding="max_length", truncation=True).input_ids
    """
    assert "GO306" not in codes(lint_source(diffusion))


def test_go303_joblib_sized_jobs_are_info_without_the_xgboost_figure():
    """joblib (scikit-learn) sizes -1 to the container's CPU quota: the 93x of
    host-sized threads under a quota (dmlc/xgboost#7653) does not apply to it."""
    source = """
    from sklearn.ensemble import RandomForestClassifier
    import lightgbm as lgb
    forest = RandomForestClassifier(n_jobs=-1)
    booster = lgb.LGBMRegressor(n_jobs=-1)
    """
    forest, booster = [f for f in lint_source(source) if f.code == "GO303"]
    assert forest.severity == "info" and forest.estimate.high == 1.0 and "joblib reads it" in forest.message
    assert booster.severity == "warning" and booster.estimate.high == 93.0
    assert "leaves the count to OpenMP" in booster.message
    assert "not a figure measured for this library" in booster.estimate.basis


@pytest.mark.parametrize(
    "call",
    [
        "RandomForestClassifier(n_jobs=os.cpu_count())",
        "ens.ExtraTreesClassifier(n_jobs=multiprocessing.cpu_count())",
        "xgb.XGBClassifier(n_jobs=os.cpu_count())",
        "CatBoostClassifier(thread_count=os.cpu_count())",
    ],
)
def test_go303_explicit_host_count_bypasses_the_quota(call):
    """An explicit positive count is used as given, even by joblib: it is not
    the quota-sized -1, so it gets the oversubscription estimate (warning)."""
    source = f"""
    import os, multiprocessing
    import sklearn.ensemble as ens
    import xgboost as xgb
    from catboost import CatBoostClassifier
    from sklearn.ensemble import RandomForestClassifier
    model = {call}
    """
    (finding,) = [f for f in lint_source(source) if f.code == "GO303"]
    assert finding.severity == "warning", finding.message
    assert "reads it" not in finding.message and "host's CPU count" in finding.message
    if "ens." in call or "RandomForest" in call:
        # joblib's workers are processes: the measured surplus-worker figure, not OpenMP's 93x.
        assert finding.estimate.source == "measured on CPU" and finding.estimate.high == 1.4
        assert "worker processes" in finding.estimate.basis
    else:
        assert finding.estimate.source == SOURCE_CITED and finding.estimate.high == 93.0
        assert "bypassing the CPU quota" in finding.estimate.basis


@pytest.mark.parametrize(
    "call,reader",
    [
        ("xgb.XGBRegressor(n_jobs=-1)", "xgboost"),
        ("xgb.XGBClassifier(nthread=-1)", "xgboost"),
        ("CatBoostClassifier(thread_count=-1)", "catboost"),
        ("ens.RandomForestRegressor(n_jobs=-1)", "joblib"),
    ],
)
def test_go303_libraries_that_read_the_quota_are_info_at_1x(call, reader):
    source = f"""
    import xgboost as xgb
    import sklearn.ensemble as ens
    from catboost import CatBoostClassifier
    model = {call}
    """
    (finding,) = [f for f in lint_source(source) if f.code == "GO303"]
    assert finding.severity == "info"
    assert f"({reader} reads it)" in finding.message
    assert finding.estimate.source == SOURCE_DERIVED
    assert (finding.estimate.low, finding.estimate.high) == (1.0, 1.0)


def test_go303_lightgbm_num_threads_minus_one_keeps_the_cited_oversubscription():
    source = "import lightgbm as lgb\nbooster = lgb.LGBMClassifier(num_threads=-1)\n"
    (finding,) = [f for f in lint_source(source) if f.code == "GO303"]
    assert finding.severity == "warning" and finding.estimate.source == SOURCE_CITED
    assert "lightgbm's -1 leaves the count to OpenMP" in finding.estimate.basis
    assert "xgboost's measurement" in finding.estimate.basis


@pytest.mark.parametrize(
    "inner,source_label,high",
    [
        ("RandomForestClassifier(n_jobs=-1)", SOURCE_CPU, 1.0),
        ("ens.ExtraTreesClassifier(n_jobs=-1)", SOURCE_CPU, 1.0),
        ("xgb.XGBClassifier(n_jobs=-1)", SOURCE_DERIVED, 1.0),
        ("CatBoostClassifier(thread_count=-1)", SOURCE_DERIVED, 1.0),
        ("RandomForestClassifier(n_jobs=os.cpu_count())", SOURCE_CITED, 93.0),
        ("ens.ExtraTreesClassifier(n_jobs=multiprocessing.cpu_count())", SOURCE_CITED, 93.0),
        ("lgb.LGBMClassifier(n_jobs=-1)", SOURCE_CITED, 93.0),
    ],
)
def test_go302_estimate_follows_what_sizes_the_inner_count(inner, source_label, high):
    """The measured 1.0x for a scikit-learn nest (joblib caps the inner
    threads, its cpu_count reads the quota); the cited factor only where the
    inner count ignores the quota."""
    source = f"""
    import os, multiprocessing
    import lightgbm as lgb
    import sklearn.ensemble as ens
    import xgboost as xgb
    from catboost import CatBoostClassifier
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import GridSearchCV
    search = GridSearchCV({inner}, {{"max_depth": [4, 8]}}, n_jobs=-1)
    """
    (finding,) = [f for f in lint_source(source) if f.code == "GO302"]
    assert finding.estimate.source == source_label
    assert (finding.estimate.low, finding.estimate.high) == (1.0, high)
    assert finding.estimate.unit == "x search time"


def test_go301_thread_counts_use_the_torch_measurement_not_xgboost():
    source = """
    import os
    import torch
    torch.set_num_threads(os.cpu_count())
    os.environ["OMP_NUM_THREADS"] = str(os.cpu_count())
    """
    findings = [f for f in lint_source(source) if f.code == "GO301"]
    assert len(findings) == 2
    for finding in findings:
        assert finding.estimate.source == SOURCE_CPU
        assert (finding.estimate.low, finding.estimate.high) == (1.0, 10.0)
        assert "52 ms with 2" in finding.estimate.basis and "xgboost" not in finding.estimate.basis
        assert "measured on CPU" in finding.estimate.headline()
