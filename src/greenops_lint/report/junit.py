"""JUnit XML: one failed test case per finding, grouped by file (as ruff does)."""

from __future__ import annotations

import re
from xml.etree import ElementTree as ET

# Characters XML 1.0 cannot hold at all, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _xml(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def format_findings(findings, rules) -> str:
    suite = ET.Element("testsuite", name="greenops-lint", tests=str(len(findings)), failures=str(len(findings)), errors="0")
    for f in findings:
        case = ET.SubElement(suite, "testcase", classname=_xml(f.path), name=_xml(f"{f.code} {f.location()}"))
        failure = ET.SubElement(case, "failure", message=_xml(f"{f.code} {f.message}"), type=f.code)
        failure.text = _xml(f"{f.location()}: {f.code} {f.message}")
    root = ET.Element("testsuites", name="greenops-lint", tests=str(len(findings)), failures=str(len(findings)))
    root.append(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
