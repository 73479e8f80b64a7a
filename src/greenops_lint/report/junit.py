"""JUnit XML: one failed test case per finding, grouped by file (as ruff does)."""

from __future__ import annotations

from xml.etree import ElementTree as ET


def format_findings(findings, rules) -> str:
    suite = ET.Element("testsuite", name="greenops-lint", tests=str(len(findings)), failures=str(len(findings)), errors="0")
    for f in findings:
        case = ET.SubElement(suite, "testcase", classname=f.path, name=f"{f.code} {f.location()}")
        failure = ET.SubElement(case, "failure", message=f"{f.code} {f.message}", type=f.code)
        failure.text = f"{f.location()}: {f.code} {f.message}"
    root = ET.Element("testsuites", name="greenops-lint", tests=str(len(findings)), failures=str(len(findings)))
    root.append(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
