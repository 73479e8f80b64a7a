"""Colour for the text, concise and full formats on a terminal (ruff's
palette: bold location, red code, cyan fix marker, red carets)."""

from __future__ import annotations

import re

import click

_HEADER = re.compile(r"^(?P<loc>\S[^\n]*?:\d+:\d+:) (?P<code>[A-Z]+\d+)(?P<fix> \[\*\])?")
_CARET = re.compile(r"^(?P<gutter>\s*\|\s*)(?P<caret>\^+)(?P<code> [A-Z]+\d+)?$")
_GUTTER = re.compile(r"^(?P<gutter>\s*\d*\s*\|)")


def colorize(report: str) -> str:
    out = []
    for line in report.splitlines(keepends=True):
        body, ending = line.rstrip("\n"), line[len(line.rstrip("\n")) :]
        header = _HEADER.match(body)
        caret = _CARET.match(body)
        if header:
            body = (
                click.style(header["loc"], bold=True)
                + " "
                + click.style(header["code"], fg="red", bold=True)
                + (click.style(header["fix"], fg="cyan") if header["fix"] else "")
                + body[header.end() :]
            )
        elif caret:
            body = click.style(caret["gutter"], fg="blue", bold=True) + click.style(
                caret["caret"] + (caret["code"] or ""), fg="red", bold=True
            )
        elif body.startswith("  = "):
            body = click.style("  =", fg="blue", bold=True) + body[3:]
        else:
            gutter = _GUTTER.match(body)
            if gutter and "|" in gutter["gutter"]:
                body = click.style(gutter["gutter"], fg="blue", bold=True) + body[gutter.end() :]
        out.append(body + ending)
    return "".join(out)
