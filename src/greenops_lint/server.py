"""`greenops-lint server`: a language server over stdio (pygls).

- Diagnostics for the editor's text (not the file on disk) when a document is
  opened, and after each change once typing pauses (debounced); cleared when it
  is closed. Each publication carries the version it was computed for, and a
  result for an outdated version is dropped.
- Code actions: each finding's fix (safe fixes plain and preferred, unsafe ones
  labelled "unsafe"), `# noqa: CODE` for the line, and `source.fixAll` (the safe
  fixes, as `check --fix` applies them).
- Hover: the finding, its estimate and assumptions, and a link to the rule page.
- Jupyter notebooks (LSP notebook documents): see `server_notebooks`.
- Configuration: the file's project (`[tool.greenops-lint]` in the nearest
  `pyproject.toml`), reread when it changes; excluded files get no diagnostics.
  Results go through the same cache as `check`.

Options (`initializationOptions`): `debounce` (seconds, default 0.15) and
`unsafeFixes` (offer unsafe fixes; default true, labelled).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Optional

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from greenops_lint import __version__
from greenops_lint.config import ConfigError
from greenops_lint.editor import (
    META,
    Analysis,
    Projects,
    fix_all,
    fix_for,
    hover_markdown,
    line_edit,
    lint_text,
    noqa_for,
    path_of_uri,
    same_finding,
    with_fixes,
)
from greenops_lint.finding import Finding

SOURCE = "greenops-lint"
DEBOUNCE_S = 0.15
FIX_ALL = types.CodeActionKind.SourceFixAll + ".greenops-lint"
_SEVERITY = {
    "error": types.DiagnosticSeverity.Error,
    "warning": types.DiagnosticSeverity.Warning,
    "info": types.DiagnosticSeverity.Information,
}
logger = logging.getLogger(__name__)


@dataclass
class _Document:
    version: Optional[int] = None
    analysis: Optional[Analysis] = None
    analysed_version: Optional[int] = None
    pending: Optional[asyncio.Task] = None
    config_error: Optional[str] = field(default=None)


class GreenOpsServer(LanguageServer):
    def __init__(self) -> None:
        from greenops_lint.server_notebooks import NOTEBOOK_SYNC, Notebooks

        super().__init__("greenops-lint", __version__, max_workers=2, notebook_document_sync=NOTEBOOK_SYNC)
        self.projects = Projects()
        self.documents: dict[str, _Document] = {}
        self.notebooks = Notebooks(self)
        self.debounce = DEBOUNCE_S
        self.unsafe_fixes = True

    # -- linting ------------------------------------------------------------------
    def path_of(self, uri: str) -> str:
        return path_of_uri(uri) or uri.rsplit("/", 1)[-1] or "untitled.py"

    def analyse(
        self, uri: str, text: str, want_fixes: bool = False, path: Optional[str] = None
    ) -> tuple[Optional[Analysis], Optional[str]]:
        """Lint `text` as the document `uri` (read as `path` when given)."""
        path = path or self.path_of(uri)
        try:
            project = self.projects.for_path(path_of_uri(uri))
        except ConfigError as exc:
            return None, str(exc)
        return lint_text(project, path, text, want_fixes=want_fixes), None

    async def refresh(self, uri: str, delay: float = 0.0) -> None:
        """Lint the document's current text and publish, unless it changed meanwhile."""
        if delay:
            await asyncio.sleep(delay)
        state = self.documents.get(uri)
        if state is None:
            return
        document = self.workspace.get_text_document(uri)
        version, text = document.version, document.source
        loop = asyncio.get_running_loop()
        analysis, error = await loop.run_in_executor(self.thread_pool, self.analyse, uri, text)
        if self.documents.get(uri) is not state or state.version != version:
            return  # closed or edited while linting: a newer run publishes
        state.analysis, state.analysed_version, state.config_error = analysis, version, error
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(
                uri=uri, version=version, diagnostics=self.diagnostics(analysis, error, text)
            )
        )

    def schedule(self, uri: str, version: Optional[int], delay: float) -> None:
        state = self.documents.setdefault(uri, _Document())
        state.version = version
        if state.pending is not None and not state.pending.done():
            state.pending.cancel()
        state.pending = asyncio.get_running_loop().create_task(self.refresh(uri, delay))

    # -- LSP shapes ----------------------------------------------------------------
    def diagnostics(self, analysis: Optional[Analysis], error: Optional[str], text: str) -> list[types.Diagnostic]:
        if error is not None:
            return [
                types.Diagnostic(
                    range=types.Range(types.Position(0, 0), types.Position(0, 0)),
                    message=f"configuration error: {error}",
                    severity=types.DiagnosticSeverity.Error,
                    source=SOURCE,
                    code="GO003",
                )
            ]
        if analysis is None or analysis.excluded:
            return []
        lines = text.splitlines()
        return [self.diagnostic(f, lines) for f in analysis.findings]

    def _position(self, lines: list[str], line: int, column: int) -> types.Position:
        """1-based line and code-point column -> the client's position units."""
        row = max(0, line - 1)
        if row >= len(lines):
            return types.Position(len(lines), 0)
        prefix = lines[row][: max(0, column - 1)]
        return types.Position(row, self.workspace.position_codec.client_num_units(prefix))

    def _range(self, finding: Finding, lines: list[str]) -> types.Range:
        return types.Range(
            self._position(lines, finding.line, finding.column),
            self._position(lines, finding.end_line, finding.end_column),
        )

    def diagnostic(self, finding: Finding, lines: list[str]) -> types.Diagnostic:
        message = finding.message + (f" ({finding.estimate.headline()})" if finding.estimate else "")
        return types.Diagnostic(
            range=self._range(finding, lines),
            message=message,
            severity=_SEVERITY.get(finding.severity, types.DiagnosticSeverity.Warning),
            code=finding.code,
            code_description=types.CodeDescription(href=_help(finding.code)),
            source=SOURCE,
            data={
                "code": finding.code,
                "line": finding.line,
                "column": finding.column,
                "end_line": finding.end_line,
                "end_column": finding.end_column,
                "fixable": finding.fixable,
            },
        )

    def text_document_edit(self, uri: str, version: Optional[int], old: str, new: str) -> types.TextDocumentEdit:
        """The edit turning the document's text `old` into `new` (the lines that differ)."""
        start, end, replacement = line_edit(old, new)
        lines = old.splitlines(keepends=True)
        if end >= len(lines) and lines and not lines[-1].endswith(("\n", "\r")):
            last = len(lines) - 1
            end_position = types.Position(last, self.workspace.position_codec.client_num_units(lines[last]))
        else:
            end_position = types.Position(end, 0)
        edit = types.TextEdit(range=types.Range(types.Position(start, 0), end_position), new_text=replacement)
        return types.TextDocumentEdit(
            text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version), edits=[edit]
        )

    def _edit(self, uri: str, version: Optional[int], old: str, new: str) -> types.WorkspaceEdit:
        return types.WorkspaceEdit(document_changes=[self.text_document_edit(uri, version, old, new)])

    def code_actions(self, params: types.CodeActionParams) -> list[types.CodeAction]:
        uri = params.text_document.uri
        notebook = self.notebooks.notebook_of(uri)
        if notebook is not None:
            return self.notebooks.code_actions(notebook, params)
        document = self.workspace.get_text_document(uri)
        text, version = document.source, document.version
        only = params.context.only
        actions: list[types.CodeAction] = []
        state = self.documents.get(uri)
        analysis = state.analysis if state is not None and state.analysed_version == version else None
        if analysis is None:
            analysis, _ = self.analyse(uri, text, want_fixes=True)
        if analysis is None or analysis.excluded:
            return []
        diagnostics = ours(params.context.diagnostics)
        if wanted(only, types.CodeActionKind.QuickFix) and diagnostics:
            project = self.projects.for_path(path_of_uri(uri))
            if analysis.fixes is None:
                analysis = with_fixes(project, analysis)
                if state is not None and state.analysed_version == version:
                    state.analysis = analysis
            for diagnostic in diagnostics:
                finding = next((f for f in analysis.findings if matches(f, diagnostic.data)), None)
                if finding is None or finding.code in META:
                    continue
                fixed = fix_for(analysis, finding)
                if fixed is not None and (fixed.safe or self.unsafe_fixes):
                    edit = self._edit(uri, version, text, fixed.text)
                    actions.append(fix_action(finding, fixed.title, fixed.safe, diagnostic, edit))
                suppressed = noqa_for(text, finding)
                if suppressed is not None:
                    actions.append(noqa_action(finding, diagnostic, self._edit(uri, version, text, suppressed)))
        if wanted(only, FIX_ALL) and (only or any(f.fixable for f in analysis.findings)):
            project = self.projects.for_path(path_of_uri(uri))
            fixed_text = fix_all(project, self.path_of(uri), text)
            if fixed_text is not None:
                actions.append(
                    types.CodeAction(
                        title="greenops-lint: apply all safe fixes",
                        kind=FIX_ALL,
                        edit=self._edit(uri, version, text, fixed_text),
                    )
                )
        return actions

    def hover(self, params: types.HoverParams) -> Optional[types.Hover]:
        uri = params.text_document.uri
        notebook = self.notebooks.notebook_of(uri)
        if notebook is not None:
            return self.notebooks.hover(notebook, params)
        state = self.documents.get(uri)
        document = self.workspace.get_text_document(uri)
        if state is None or state.analysis is None or state.analysed_version != document.version:
            return None
        return self.hover_at(uri, state.analysis.findings, document.source.splitlines(), params.position)

    def hover_at(
        self, uri: str, findings: list[Finding], lines: list[str], position: types.Position
    ) -> Optional[types.Hover]:
        """The hover for the findings (of the document `uri`, whose text is
        `lines`) whose range holds `position`."""
        where = (position.line, position.character)
        found = []
        for finding in findings:
            span = self._range(finding, lines)
            if (span.start.line, span.start.character) <= where <= (span.end.line, span.end.character):
                found.append((finding, span))
        if not found:
            return None
        project = self.projects.for_path(path_of_uri(uri))
        text = "\n\n---\n\n".join(hover_markdown(f, project.registry.rules.get(f.code)) for f, _ in found)
        return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text), range=found[0][1])


def _help(code: str) -> str:
    from greenops_lint.report.sarif import HELP_URI

    return HELP_URI.format(code=code)


def wanted(only: Optional[list[str]], kind: str) -> bool:
    """Does a code action request restricted to `only` kinds ask for `kind`?"""
    return not only or any(kind == k or kind.startswith(k + ".") for k in only)


def ours(diagnostics: list[types.Diagnostic]) -> list[types.Diagnostic]:
    return [d for d in diagnostics if d.source == SOURCE and isinstance(d.data, dict)]


def fix_action(
    finding: Finding, title: str, safe: bool, diagnostic: types.Diagnostic, edit: types.WorkspaceEdit
) -> types.CodeAction:
    label = "" if safe else " (unsafe: may change numerics or behaviour)"
    return types.CodeAction(
        title=f"{finding.code}: {title}{label}",
        kind=types.CodeActionKind.QuickFix,
        diagnostics=[diagnostic],
        is_preferred=safe,
        edit=edit,
    )


def noqa_action(finding: Finding, diagnostic: types.Diagnostic, edit: types.WorkspaceEdit) -> types.CodeAction:
    return types.CodeAction(
        title=f"{finding.code}: add `# noqa: {finding.code}` on this line",
        kind=types.CodeActionKind.QuickFix,
        diagnostics=[diagnostic],
        edit=edit,
    )


def matches(finding: Finding, data: dict) -> bool:
    """Is `finding` the one a diagnostic's `data` was made from?"""
    probe = Finding(
        "",
        data.get("line", 0),
        data.get("column", 0),
        data.get("end_line", 0),
        data.get("end_column", 0),
        data.get("code", ""),
        "",
        "",
        "",
    )
    return same_finding(finding, probe)


def build_server() -> GreenOpsServer:
    from greenops_lint import server_notebooks

    server = GreenOpsServer()
    server_notebooks.register(server)

    @server.feature(types.INITIALIZE)
    def initialize(ls: GreenOpsServer, params: types.InitializeParams) -> None:
        options = params.initialization_options if isinstance(params.initialization_options, dict) else {}
        if isinstance(options.get("debounce"), (int, float)):
            ls.debounce = max(0.0, float(options["debounce"]))
        if isinstance(options.get("unsafeFixes"), bool):
            ls.unsafe_fixes = options["unsafeFixes"]

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    async def did_open(ls: GreenOpsServer, params: types.DidOpenTextDocumentParams) -> None:
        if ls.notebooks.notebook_of(params.text_document.uri) is not None:
            return  # a cell, synced as part of its notebook as well: linted with its notebook
        ls.schedule(params.text_document.uri, params.text_document.version, 0.0)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(ls: GreenOpsServer, params: types.DidChangeTextDocumentParams) -> None:
        if params.text_document.uri not in ls.documents:
            return  # not opened as a text document (a notebook's cell)
        ls.schedule(params.text_document.uri, params.text_document.version, ls.debounce)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    async def did_save(ls: GreenOpsServer, params: types.DidSaveTextDocumentParams) -> None:
        # The configuration may have changed with the save; the text has not.
        state = ls.documents.get(params.text_document.uri)
        if state is not None and state.config_error is not None:
            ls.schedule(params.text_document.uri, state.version, 0.0)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    async def did_close(ls: GreenOpsServer, params: types.DidCloseTextDocumentParams) -> None:
        state = ls.documents.pop(params.text_document.uri, None)
        if state is not None and state.pending is not None:
            state.pending.cancel()
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[])
        )

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix, FIX_ALL], resolve_provider=False),
    )
    def code_action(ls: GreenOpsServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        return ls.code_actions(params)

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: GreenOpsServer, params: types.HoverParams) -> Optional[types.Hover]:
        return ls.hover(params)

    return server


def serve() -> None:
    logging.basicConfig(level=logging.WARNING)
    build_server().start_io()
