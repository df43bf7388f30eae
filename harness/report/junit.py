"""junit.xml: one <testcase> per check, in the JUnit dialect Jenkins, GitLab and GitHub reporters read.

Layout (Jenkins' junit-10.xsd order: properties, then testcases, then system-out):

    <testsuites name="harness" tests failures errors skipped time>
      <testsuite name=<scenario> tests failures errors skipped time timestamp>
        <properties> seed, plan_digest, backend, node_count </properties>
        <testcase classname=<scenario> name=<check> time="0">
          <failure message=... type="CheckFailed">value, bound, details</failure>   (failed checks)
          <error message=... type="CheckError">details</error>                      (errored checks)
          <system-out>description, value, bound</system-out>
        </testcase>

Checks are evaluated after the run, so each testcase takes no time of its own ("0"); the suite's
time is the run's duration.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

from harness.analysis.model import CheckResult, CheckVerdict, Report

# Characters XML 1.0 forbids even escaped (C0 controls except tab/newline/CR, surrogates, U+FFFE/F).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(value: object) -> str:
    return _XML_ILLEGAL.sub("\ufffd", str(value))


def format_value(value: object, unit: str = "") -> str:
    """A check value as a person reads it: "1.25 s", "true", "n/a" for None."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = str(value)
    return f"{text} {unit}".rstrip() if unit else text


def _outcome_message(check: CheckResult) -> str:
    value = format_value(check.value, check.unit)
    if check.verdict is CheckVerdict.ERROR:
        return f"{check.name} could not be evaluated" + (f": {check.details}" if check.details else "")
    return f"{check.name} = {value}, bound {format_value(check.bound, check.unit)}"


def _testcase(parent: ET.Element, scenario: str, check: CheckResult) -> None:
    case = ET.SubElement(parent, "testcase", classname=_xml_text(scenario), name=_xml_text(check.name), time="0")
    lines = [f"value: {format_value(check.value, check.unit)}", f"bound: {format_value(check.bound, check.unit)}"]
    if check.details:
        lines.append(check.details)
    if check.verdict is CheckVerdict.FAIL:
        failure = ET.SubElement(case, "failure", message=_xml_text(_outcome_message(check)), type="CheckFailed")
        failure.text = _xml_text("\n".join(lines))
    elif check.verdict is CheckVerdict.ERROR:
        error = ET.SubElement(case, "error", message=_xml_text(_outcome_message(check)), type="CheckError")
        error.text = _xml_text(check.details or "no details")
    out = ET.SubElement(case, "system-out")
    out.text = _xml_text("\n".join([check.description, *lines[:2]]))


def build_junit(report: Report) -> ET.ElementTree:
    counts = {
        "tests": str(len(report.checks)),
        "failures": str(report.count(CheckVerdict.FAIL)),
        "errors": str(report.count(CheckVerdict.ERROR)),
        "skipped": "0",
        "time": f"{report.duration:.3f}",
    }
    root = ET.Element("testsuites", name="harness", **counts)
    # junit-10.xsd wants an ISO 8601 timestamp without a zone; it is UTC.
    started = datetime.fromtimestamp(report.started_at, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    suite = ET.SubElement(root, "testsuite", name=_xml_text(report.scenario), timestamp=started, **counts)
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("seed", report.seed),
        ("plan_digest", report.plan_digest),
        ("backend", report.backend),
        ("node_count", report.node_count),
    ):
        ET.SubElement(properties, "property", name=name, value=_xml_text(value))
    for check in report.checks:
        _testcase(suite, report.scenario, check)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(path: Path, report: Report) -> Path:
    build_junit(report).write(path, encoding="utf-8", xml_declaration=True)
    return path
