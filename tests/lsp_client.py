"""A minimal LSP client over stdio, driving `greenops-lint server` in a
subprocess as an editor does (used by tests/test_server.py and
benchmarks/bench_lsp.py)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

SRC = Path(__file__).resolve().parent.parent / "src"


class LspClient:
    def __init__(self, cwd: Path, initialization_options: Optional[dict] = None) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "greenops_lint", "server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
        )
        self._next_id = 0
        self._responses: dict[int, dict] = {}
        self._notifications: "queue.Queue[dict]" = queue.Queue()
        self._published: list[dict] = []
        self._lock = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.capabilities = self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": Path(cwd).resolve().as_uri(),
                "capabilities": {
                    "textDocument": {"publishDiagnostics": {"versionSupport": True}},
                    "notebookDocument": {"synchronization": {}},
                },
                "initializationOptions": initialization_options or {},
            },
        )["capabilities"]
        self.notify("initialized", {})

    # -- wire -----------------------------------------------------------------------
    def _send(self, message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def _read(self) -> None:
        stream = self.process.stdout
        while True:
            length = None
            while True:
                line = stream.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value.strip())
            message = json.loads(stream.read(length))
            if "id" in message and "method" not in message:
                with self._lock:
                    self._responses[message["id"]] = message
                    self._lock.notify_all()
            elif "method" in message and "id" in message:
                self._send({"id": message["id"], "result": None})  # server-to-client requests
            else:
                self._notifications.put(message)

    def request(self, method: str, params: Any, timeout: float = 30) -> Any:
        self._next_id += 1
        ident = self._next_id
        self._send({"id": ident, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        with self._lock:
            while ident not in self._responses:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no answer to {method} in {timeout} s")
                self._lock.wait(left)
            response = self._responses.pop(ident)
        if "error" in response:
            raise RuntimeError(f"{method}: {response['error']}")
        return response.get("result")

    def notify(self, method: str, params: Any) -> None:
        self._send({"method": method, "params": params})

    def diagnostics(self, uri: str, version: Optional[int] = None, timeout: float = 30) -> list[dict]:
        """The next diagnostics published for `uri` (for `version`, when given);
        publications for other documents are kept for later calls."""
        deadline = time.monotonic() + timeout
        while True:
            for index, params in enumerate(self._published):
                if params["uri"] == uri and (version is None or params.get("version") == version):
                    del self._published[index]
                    return params["diagnostics"]
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no diagnostics for {uri} (version {version}) in {timeout} s")
            try:
                message = self._notifications.get(timeout=left)
            except queue.Empty:
                continue
            if message.get("method") == "textDocument/publishDiagnostics":
                self._published.append(message["params"])

    # -- editor actions -------------------------------------------------------------------
    def open(self, uri: str, text: str, version: int = 1) -> None:
        self.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": version, "text": text}},
        )

    def change(self, uri: str, text: str, version: int) -> None:
        self.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"text": text}],
            },
        )

    def close_document(self, uri: str) -> None:
        self.notify("textDocument/didClose", {"textDocument": {"uri": uri}})

    # -- notebooks (LSP 3.17 notebook documents, as VS Code sends them) ----------------------
    def open_notebook(self, uri: str, cells: list[tuple[str, str, str]], version: int = 1) -> None:
        """`cells`: (cell URI, kind "code" or "markdown", text), in order."""
        self.notify(
            "notebookDocument/didOpen",
            {
                "notebookDocument": {
                    "uri": uri,
                    "notebookType": "jupyter-notebook",
                    "version": version,
                    "cells": [{"kind": 2 if kind == "code" else 1, "document": cell} for cell, kind, _ in cells],
                },
                "cellTextDocuments": [
                    {"uri": cell, "languageId": "python" if kind == "code" else "markdown", "version": 1, "text": text}
                    for cell, kind, text in cells
                ],
            },
        )

    def change_notebook_cell(self, uri: str, version: int, cell: str, cell_version: int, text: str) -> None:
        """Replace one cell's whole text."""
        self.notify(
            "notebookDocument/didChange",
            {
                "notebookDocument": {"uri": uri, "version": version},
                "change": {
                    "cells": {
                        "textContent": [
                            {"document": {"uri": cell, "version": cell_version}, "changes": [{"text": text}]}
                        ]
                    }
                },
            },
        )

    def change_notebook_structure(
        self, uri: str, version: int, start: int, delete: int, opened: list[tuple[str, str]], closed: list[str]
    ) -> None:
        """Replace `delete` cells at `start` with the Python cells `opened`, (cell URI, text)."""
        self.notify(
            "notebookDocument/didChange",
            {
                "notebookDocument": {"uri": uri, "version": version},
                "change": {
                    "cells": {
                        "structure": {
                            "array": {
                                "start": start,
                                "deleteCount": delete,
                                "cells": [{"kind": 2, "document": cell} for cell, _ in opened],
                            },
                            "didOpen": [
                                {"uri": cell, "languageId": "python", "version": 1, "text": text}
                                for cell, text in opened
                            ],
                            "didClose": [{"uri": cell} for cell in closed],
                        }
                    }
                },
            },
        )

    def close_notebook(self, uri: str, cells: list[str]) -> None:
        self.notify(
            "notebookDocument/didClose",
            {"notebookDocument": {"uri": uri}, "cellTextDocuments": [{"uri": cell} for cell in cells]},
        )

    def shutdown(self, timeout: float = 10) -> int:
        self.request("shutdown", None)
        self.notify("exit", None)
        try:
            return self.process.wait(timeout)
        finally:
            for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
                stream.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
