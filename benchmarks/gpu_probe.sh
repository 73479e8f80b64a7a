#!/usr/bin/env bash
# The runtime probe's GPU paths on an NVIDIA machine, in one go.
#
#   benchmarks/gpu_probe.sh [OUT_DIR]        (default OUT_DIR: gpu-probe-out)
#
# Needs an NVIDIA GPU and driver, torch built with CUDA, and for energy
# nvidia-ml-py:  pip install -e '.[probe,gpu,plot,test]'
# Honours CUDA_VISIBLE_DEVICES (templates run on the first visible GPU, and
# NVML reads that GPU's counter). REPEATS (default 4) and TIMEOUT (default 300)
# tune the probe. Writes OUT_DIR/gpu.csv, probe.json, probe.txt and probe.png,
# and exits non-zero when the GPU paths (CUDA events, a GPU hardware profile,
# NVML energy where nvidia-ml-py is installed) did not run.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-gpu-probe-out}"
PYTHON="${PYTHON:-python3}"
REPEATS="${REPEATS:-4}"
TIMEOUT="${TIMEOUT:-300}"
mkdir -p "$OUT"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

if ! command -v nvidia-smi >/dev/null; then
    echo "gpu_probe.sh: no nvidia-smi: this script needs an NVIDIA GPU" >&2
    exit 2
fi
nvidia-smi --query-gpu=index,name,uuid,driver_version,power.limit,clocks.sm,temperature.gpu --format=csv | tee "$OUT/gpu.csv"

"$PYTHON" - <<'PY'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_probe.sh: torch has no CUDA: install a CUDA build of torch")
print("torch", torch.__version__, "CUDA", torch.version.cuda, "device 0:", torch.cuda.get_device_name(0))
try:
    import pynvml  # noqa: F401
except ImportError:
    print("warning: nvidia-ml-py is missing, energy will be null: pip install 'greenops-lint[gpu]'", file=sys.stderr)
PY

# 1. The CUDA/NVML logic with fakes (fast), so a failure below is the hardware's.
"$PYTHON" -m pytest -q -p no:cacheprovider tests/test_probe_host.py tests/test_probe_measure.py tests/test_probe_stats.py

# 2. Real probes on the GPU: float64 training step and matmul, float64 default,
#    float64 NumPy data, an unused layer (CUDA memory), DDP (gloo, CPU), and a
#    tensor created on the CPU and moved (GO502, once that rule exists).
cp fixtures/probe/GO402_float64_mlp.py fixtures/probe/GO301_GO403_tabular.py fixtures/probe/GO201_GO202_ddp_aux_head.py "$WORK"/
printf '[tool.greenops-lint]\nextend-select = ["GO5"]\n' > "$WORK/pyproject.toml"
# Not a pipe into grep -q: under pipefail grep's early exit SIGPIPEs the writer and
# the pipeline fails even when GO5xx rules exist.
RULES="$("$PYTHON" -m greenops_lint.cli rules)"
if ! grep -q '^GO5' <<<"$RULES"; then
    printf '[tool.greenops-lint]\n' > "$WORK/pyproject.toml"
    echo "note: no GO5xx rule in this version: the GO502 probe is not exercised" >&2
fi
cat > "$WORK/GO401_physics_default.py" <<'EOF'
import torch
from torch import nn

torch.set_default_dtype(torch.float64)

model = nn.Sequential(nn.Linear(2048, 2048), nn.GELU(), nn.Linear(2048, 2048), nn.GELU(), nn.Linear(2048, 10))
optimizer = torch.optim.AdamW(model.parameters())
loader = DataLoader(dataset, batch_size=256)
EOF
cat > "$WORK/GO502_moved_to_device.py" <<'EOF'
import torch

device = torch.device("cuda")
for step in range(1000):
    noise = torch.randn(4096, 4096).to(device)
    latents = model(noise)
EOF

set +e
"$PYTHON" -m greenops_lint.cli probe "$WORK" --format json --repeats "$REPEATS" --timeout "$TIMEOUT" \
    --plot "$OUT/probe.png" -o "$OUT/probe.json"
status=$?
set -e
if [ ! -s "$OUT/probe.json" ]; then
    echo "gpu_probe.sh: the probe wrote no report (exit $status)" >&2
    exit 1
fi

# 3. The report, and checks that the GPU paths really ran.
"$PYTHON" - "$OUT" "$status" <<'PY'
import json
import sys

from greenops_lint.probe.report import render_text, summary

out, status = sys.argv[1], int(sys.argv[2])
records = json.load(open(f"{out}/probe.json"))
text = render_text(records)
open(f"{out}/probe.txt", "w").write(text)
print(text)
print(summary(records))
problems = []
on_gpu = [r for r in records if str(r.get("device", "")).startswith("cuda")]
if not on_gpu:
    problems.append("no record ran on a CUDA host")
if any(r["hardware"] in ("cloud-vcpu-2", "x86-server-cpu") for r in on_gpu):
    problems.append("a CUDA run was checked against a CPU profile")
if not any((r.get("measured") or {}).get("clock") == "cuda" for r in on_gpu):
    problems.append("no measurement used CUDA events")
if not any(r["bytes"]["before"].get("gpu_peak_allocated") for r in on_gpu):
    problems.append("no record has torch.cuda.max_memory_allocated")
try:
    import pynvml  # noqa: F401
    if not any(r["energy_source"] == "nvml" for r in on_gpu):
        problems.append("nvidia-ml-py is installed but no record read NVML energy")
except ImportError:
    pass
if status not in (0,):
    problems.append(f"the probe exited {status} (a timeout or a failed variant: see above)")
for problem in problems:
    print("gpu_probe.sh: FAIL:", problem, file=sys.stderr)
print("gpu_probe.sh:", "FAIL" if problems else "OK", f"({len(records)} records, report in {out}/)")
sys.exit(1 if problems else 0)
PY
