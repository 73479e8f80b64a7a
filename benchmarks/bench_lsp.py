"""The language server's latency: from a didChange of a 1,000-line training
script to the fresh diagnostics for that version (the target is under 1 s).

Drives `greenops-lint server` over stdio as an editor does: initialize,
didOpen, then `--repeats` edits (each a full-text didChange that changes one
line, so the cache cannot answer), each timed until the publishDiagnostics of
its version arrives; then shutdown and exit. The time includes the server's
debounce (`--debounce`, default the server's 0.15 s).

With `--cells N` the same source is opened as a Jupyter notebook of N cells
(split at top-level definitions; LSP notebook documents) and each edit is a
notebook didChange of one cell, timed until that cell's diagnostics arrive.

    python benchmarks/bench_lsp.py [--lines 1000] [--repeats 10] [--debounce S] [--cells N]
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


def split_cells(text: str, cells: int) -> list[str]:
    """`text` in about `cells` pieces, each cut before a top-level `class` or `def`."""
    lines = text.split("\n")
    size = max(1, len(lines) // cells)
    pieces, start = [], 0
    for index, line in enumerate(lines):
        if index - start >= size and line.startswith(("class ", "def ")) and len(pieces) < cells - 1:
            pieces.append("\n".join(lines[start:index]))
            start = index
    pieces.append("\n".join(lines[start:]))
    return pieces


def bench_notebook(project: Path, text: str, cells: int, repeats: int, options: dict) -> None:
    notebook = project / "train.ipynb"
    uri = notebook.resolve().as_uri()
    pieces = split_cells(text, cells)
    cell_uris = [f"vscode-notebook-cell:{notebook.resolve().as_posix()}#C{n}" for n in range(len(pieces))]
    target = next(n for n, piece in enumerate(pieces) if "epochs=3" in piece)
    started = time.perf_counter()
    client = LspClient(project, options)
    try:
        client.open_notebook(uri, [(cell, "code", piece) for cell, piece in zip(cell_uris, pieces)])
        diagnostics = [client.diagnostics(cell, 1, timeout=60) for cell in cell_uris]
        first = time.perf_counter() - started
        times = []
        for version in range(2, repeats + 2):
            edited = pieces[target].replace("epochs=3", f"epochs={version}", 1)
            t0 = time.perf_counter()
            client.change_notebook_cell(uri, version, cell_uris[target], version, edited)
            fresh = client.diagnostics(cell_uris[target], version, timeout=60)
            times.append(time.perf_counter() - t0)
            assert len(fresh) == len(diagnostics[target]), (len(fresh), len(diagnostics[target]))
        code = client.shutdown()
    finally:
        client.kill()
    print(
        f"notebook of {len(pieces)} cells, {text.count(chr(10))} lines, {sum(map(len, diagnostics))} diagnostics; "
        f"start + initialize + first diagnostics (all cells) {first:.2f} s"
    )
    print(
        f"cell didChange -> the cell's fresh diagnostics over {len(times)} edits: median "
        f"{statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms; server exit code {code}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--debounce", type=float, default=None, help="the server's debounce in seconds (default: its own)"
    )
    parser.add_argument("--cells", type=int, default=0, help="open the source as a notebook of about N cells")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "pyproject.toml").write_text("[tool.greenops-lint]\n", encoding="utf-8")
        path = project / "train.py"
        text = make_source(args.lines)
        options = {} if args.debounce is None else {"debounce": args.debounce}
        if args.cells:
            bench_notebook(project, text, args.cells, args.repeats, options)
            return
        path.write_text(text, encoding="utf-8")
        uri = path.resolve().as_uri()
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
