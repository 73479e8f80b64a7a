"""Jupyter notebooks in `greenops-lint server` (LSP 3.17 notebook documents).

The server declares `notebookDocumentSync` for "jupyter-notebook" notebooks
and their Python cells. pygls' workspace keeps each notebook's cells in order
(`notebookDocument/didOpen`, `didChange`, `didClose`) and the cells' text as
text documents; on each change (debounced like a `.py` buffer) the cells are
made into the notebook's JSON in memory (`editor.notebook_json`) and linted as
`check` lints the `.ipynb` file: code cells joined, IPython magics and shell
lines handled, findings mapped back to cell and line. Diagnostics go to each
cell's own URI at cell-relative positions; code actions (fix, noqa, fix all)
and hover work on a cell as on a `.py` buffer, their edits addressed to the
cells they change.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Optional
from urllib.parse import unquote

from lsprotocol import types

from greenops_lint.editor import (
    Analysis,
    notebook_fix_all,
    notebook_fix_for,
    notebook_json,
    notebook_noqa_for,
    path_of_uri,
    with_fixes,
)
from greenops_lint.server import FIX_ALL, META, GreenOpsServer, fix_action, matches, noqa_action, ours, wanted
from greenops_lint.source import physical_lines

NOTEBOOK_SYNC = types.NotebookDocumentSyncOptions(
    notebook_selector=[
        types.NotebookDocumentFilterWithNotebook(
            notebook="jupyter-notebook", cells=[types.NotebookCellLanguage(language="python")]
        )
    ]
)


@dataclass(frozen=True)
class Cell:
    uri: str
    version: Optional[int]
    text: Optional[str]  # None: not a Python code cell (markdown, another language)


@dataclass
class _Notebook:
    analysis: Optional[Analysis] = None
    cells: tuple[Cell, ...] = ()  # the cells `analysis` was computed for
    pending: Optional[asyncio.Task] = None
    published: set[str] = field(default_factory=set)  # cell URIs that were sent diagnostics


class Notebooks:
    """The server's open notebooks (pygls' workspace holds their cells)."""

    def __init__(self, server: GreenOpsServer) -> None:
        self.server = server
        self.open: dict[str, _Notebook] = {}

    # -- state ----------------------------------------------------------------------
    def cells(self, notebook_uri: str) -> Optional[tuple[Cell, ...]]:
        """The notebook's cells, in order, as the editor has them now."""
        workspace = self.server.workspace
        notebook = workspace.get_notebook_document(notebook_uri=notebook_uri)
        if notebook is None:
            return None
        cells = []
        for cell in notebook.cells:
            document = workspace.text_documents.get(unquote(cell.document))
            python = (
                document is not None
                and cell.kind == types.NotebookCellKind.Code
                and document.language_id in (None, "", "python")
            )
            cells.append(
                Cell(cell.document, document.version if document else None, document.source if python else None)
            )
        return tuple(cells)

    def notebook_of(self, cell_uri: str) -> Optional[str]:
        """The URI of the open notebook `cell_uri` is a cell of, if any."""
        notebook = self.server.workspace.get_notebook_document(cell_uri=cell_uri)
        if notebook is None or notebook.uri not in self.open:
            return None
        return notebook.uri

    def _path(self, notebook_uri: str) -> str:
        # The path decides how the text is read: it must name a notebook.
        path = self.server.path_of(notebook_uri)
        return path if path.endswith(".ipynb") else path + ".ipynb"

    def analyse(self, notebook_uri: str, cells: tuple[Cell, ...]) -> tuple[Optional[Analysis], Optional[str]]:
        text = notebook_json([cell.text for cell in cells])
        return self.server.analyse(notebook_uri, text, path=self._path(notebook_uri))

    # -- linting and publishing ------------------------------------------------------
    def schedule(self, notebook_uri: str, delay: float) -> None:
        state = self.open.setdefault(notebook_uri, _Notebook())
        if state.pending is not None and not state.pending.done():
            state.pending.cancel()
        state.pending = asyncio.get_running_loop().create_task(self.refresh(notebook_uri, delay))

    async def refresh(self, notebook_uri: str, delay: float = 0.0) -> None:
        if delay:
            await asyncio.sleep(delay)
        state = self.open.get(notebook_uri)
        cells = self.cells(notebook_uri)
        if state is None or cells is None:
            return
        loop = asyncio.get_running_loop()
        analysis, error = await loop.run_in_executor(self.server.thread_pool, self.analyse, notebook_uri, cells)
        if self.open.get(notebook_uri) is not state or self.cells(notebook_uri) != cells:
            return  # closed or edited while linting: a newer run publishes
        state.analysis, state.cells = analysis, cells
        by_cell = self.diagnostics(analysis, error, cells)
        for uri in state.published - by_cell.keys():  # cells removed, or no longer Python
            self.server.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
        versions = {cell.uri: cell.version for cell in cells}
        for uri, diagnostics in by_cell.items():
            self.server.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=uri, version=versions[uri], diagnostics=diagnostics)
            )
        state.published = set(by_cell)

    def diagnostics(
        self, analysis: Optional[Analysis], error: Optional[str], cells: tuple[Cell, ...]
    ) -> dict[str, list[types.Diagnostic]]:
        """Each Python cell's diagnostics (empty lists included: they clear)."""
        code_cells = [cell for cell in cells if cell.text is not None]
        by_cell: dict[str, list[types.Diagnostic]] = {cell.uri: [] for cell in code_cells}
        if not code_cells:
            return by_cell
        if error is not None:
            by_cell[code_cells[0].uri] = self.server.diagnostics(None, error, "")
            return by_cell
        if analysis is None or analysis.excluded:
            return by_cell
        for finding in analysis.findings:
            cell = cells[finding.cell - 1] if finding.cell is not None and 0 < finding.cell <= len(cells) else None
            if cell is None or cell.text is None:
                # Not in a cell (a problem with the notebook as a whole): at the top.
                cell, finding = code_cells[0], replace(finding, line=1, column=1, end_line=1, end_column=1)
            by_cell[cell.uri].append(self.server.diagnostic(finding, physical_lines(cell.text)))
        return by_cell

    def close(self, notebook_uri: str, cell_uris: list[str]) -> None:
        state = self.open.pop(notebook_uri, None)
        published = set(cell_uris)
        if state is not None:
            published |= state.published
            if state.pending is not None:
                state.pending.cancel()
        for uri in sorted(published):
            self.server.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    # -- requests on a cell ----------------------------------------------------------------
    def _current(self, notebook_uri: str, cell_uri: str) -> Optional[tuple[_Notebook, tuple[Cell, ...], int]]:
        """(state, cells, the cell's 1-based number) when `cell_uri` is a Python cell."""
        state, cells = self.open.get(notebook_uri), self.cells(notebook_uri)
        if state is None or cells is None:
            return None
        number = next((n for n, c in enumerate(cells, start=1) if unquote(c.uri) == unquote(cell_uri)), None)
        if number is None or cells[number - 1].text is None:
            return None
        return state, cells, number

    def _cells_edit(self, cells: tuple[Cell, ...], sources: dict[int, str]) -> types.WorkspaceEdit:
        changes = [
            self.server.text_document_edit(cells[n - 1].uri, cells[n - 1].version, cells[n - 1].text, new)
            for n, new in sorted(sources.items())
            if 0 < n <= len(cells) and cells[n - 1].text is not None
        ]
        return types.WorkspaceEdit(document_changes=changes)

    def code_actions(self, notebook_uri: str, params: types.CodeActionParams) -> list[types.CodeAction]:
        current = self._current(notebook_uri, params.text_document.uri)
        if current is None:
            return []
        state, cells, number = current
        analysis = state.analysis if state.cells == cells else None
        if analysis is None:
            analysis, _ = self.analyse(notebook_uri, cells)
        if analysis is None or analysis.excluded:
            return []
        project = self.server.projects.for_path(path_of_uri(notebook_uri))
        only = params.context.only
        actions: list[types.CodeAction] = []
        diagnostics = ours(params.context.diagnostics)
        if wanted(only, types.CodeActionKind.QuickFix) and diagnostics:
            analysis = with_fixes(project, analysis)
            if state.cells == cells:
                state.analysis = analysis
            for diagnostic in diagnostics:
                finding = next((f for f in analysis.findings if f.cell == number and matches(f, diagnostic.data)), None)
                if finding is None or finding.code in META:
                    continue
                fixed = notebook_fix_for(analysis, finding)
                if fixed is not None and (fixed.safe or self.server.unsafe_fixes):
                    edit = self._cells_edit(cells, fixed.sources)
                    actions.append(fix_action(finding, fixed.title, fixed.safe, diagnostic, edit))
                suppressed = notebook_noqa_for(analysis, cells[number - 1].text, finding)
                if suppressed is not None:
                    actions.append(noqa_action(finding, diagnostic, self._cells_edit(cells, {number: suppressed})))
        if wanted(only, FIX_ALL) and (only or any(f.fixable for f in analysis.findings)):
            sources = notebook_fix_all(project, analysis.path, analysis.text)
            if sources:
                actions.append(
                    types.CodeAction(
                        title="greenops-lint: apply all safe fixes",
                        kind=FIX_ALL,
                        edit=self._cells_edit(cells, sources),
                    )
                )
        return actions

    def hover(self, notebook_uri: str, params: types.HoverParams) -> Optional[types.Hover]:
        current = self._current(notebook_uri, params.text_document.uri)
        if current is None:
            return None
        state, cells, number = current
        if state.analysis is None or state.cells != cells:
            return None
        findings = [f for f in state.analysis.findings if f.cell == number]
        lines = physical_lines(cells[number - 1].text)
        return self.server.hover_at(notebook_uri, findings, lines, params.position)


def register(server: GreenOpsServer) -> None:
    """The notebook notifications (pygls updates its workspace before each)."""

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_OPEN)
    async def did_open(ls: GreenOpsServer, params: types.DidOpenNotebookDocumentParams) -> None:
        ls.notebooks.schedule(params.notebook_document.uri, 0.0)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_CHANGE)
    async def did_change(ls: GreenOpsServer, params: types.DidChangeNotebookDocumentParams) -> None:
        ls.notebooks.schedule(params.notebook_document.uri, ls.debounce)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_CLOSE)
    async def did_close(ls: GreenOpsServer, params: types.DidCloseNotebookDocumentParams) -> None:
        ls.notebooks.close(params.notebook_document.uri, [cell.uri for cell in params.cell_text_documents])
