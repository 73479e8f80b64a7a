"""The language server's latency: from a didChange of a 1,000-line training
script to the fresh diagnostics for that version (the target is under 1 s).

Drives `greenops-lint server` over stdio as an editor does: initialize,
didOpen, then `--repeats` edits (each a full-text didChange that changes one
line, so the cache cannot answer), each timed until the publishDiagnostics of
its version arrives; then shutdown and exit. The time includes the server's
debounce (`--debounce`, default the server's 0.15 s).

    python benchmarks/bench_lsp.py [--lines 1000] [--repeats 10] [--debounce S]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from lsp_client import LspClient  # noqa: E402

HEADER = '''"""A generated training script for the language-server benchmark."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

'''

BLOCK = """
class Net{i}(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.body(x)


def train_{i}(model, loader, optimizer, device, epochs=3):
    model.train()
    history = []
    for epoch in range(epochs):
        running = 0.0
        for step, (data, target) in enumerate(loader):
            data, target = data.to(device), target.to(device)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(data), target)
            loss.backward()
            optimizer.step()
            running += loss.item()
            weights = np.load("weights_{i}.npy")
            history.append(float(loss))
    return history


def evaluate_{i}(model, loader, device):
    model.eval()
    correct = 0
    with torch.no_grad():
        for data, target in loader:
            correct += model(data.to(device)).argmax(1).eq(target.to(device)).sum().item()
    return correct / len(loader.dataset)

"""


def make_source(lines: int) -> str:
    text, index = HEADER, 0
    while text.count("\n") < lines:
        text += BLOCK.format(i=index)
        index += 1
    return "\n".join(text.split("\n")[:lines]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--debounce", type=float, default=None, help="the server's debounce in seconds (default: its own)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "pyproject.toml").write_text("[tool.greenops-lint]\n", encoding="utf-8")
        path = project / "train.py"
        text = make_source(args.lines)
        path.write_text(text, encoding="utf-8")
        uri = path.resolve().as_uri()
        options = {} if args.debounce is None else {"debounce": args.debounce}
        started = time.perf_counter()
        client = LspClient(project, options)
        try:
            client.open(uri, text, 1)
            diagnostics = client.diagnostics(uri, 1, timeout=60)
            first = time.perf_counter() - started
            times = []
            for version in range(2, args.repeats + 2):
                edited = text.replace("epochs=3", f"epochs={version}", 1)
                t0 = time.perf_counter()
                client.change(uri, edited, version)
                fresh = client.diagnostics(uri, version, timeout=60)
                times.append(time.perf_counter() - t0)
                assert len(fresh) == len(diagnostics), (len(fresh), len(diagnostics))
            code = client.shutdown()
        finally:
            client.kill()
    print(
        f"{text.count(chr(10))} lines, {len(diagnostics)} diagnostics; start + initialize + first diagnostics {first:.2f} s"
    )
    print(
        f"didChange -> fresh diagnostics over {len(times)} edits: median {statistics.median(times) * 1000:.0f} ms, "
        f"max {max(times) * 1000:.0f} ms (target < 1000 ms); server exit code {code}"
    )


if __name__ == "__main__":
    main()
