"""JUnit XML: one failed test case per finding, grouped by file (as ruff does);
a clean run is one passing case."""

from __future__ import annotations

import re
from xml.etree import ElementTree as ET

# Characters XML 1.0 cannot hold at all, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _xml(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def format_findings(findings, rules) -> str:
    suite = ET.Element(
        "testsuite", name="greenops-lint", tests=str(len(findings)), failures=str(len(findings)), errors="0"
    )
    for f in findings:
        case = ET.SubElement(suite, "testcase", classname=_xml(f.path), name=_xml(f"{f.code} {f.location()}"))
        failure = ET.SubElement(case, "failure", message=_xml(f"{f.code} {f.message}"), type=f.code)
        failure.text = _xml(f"{f.location()}: {f.code} {f.message}")
    if not findings:
        # A clean run is one passing case (CI dashboards show "1 passed", not "no tests").
        ET.SubElement(suite, "testcase", classname="greenops-lint", name="no findings")
        suite.set("tests", "1")
    root = ET.Element("testsuites", name="greenops-lint", tests=suite.get("tests"), failures=str(len(findings)))
    root.append(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
