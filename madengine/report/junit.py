"""``inv report.junit``: the rows as JUnit XML, for CI systems (Jenkins, GitLab, GitHub test reporters).

The format is the common JUnit XML dialect (``testsuites`` > ``testsuite`` > ``testcase``, as written by Ant, pytest
and surefire): one ``testsuite`` per input, named by its label; one ``testcase`` per row, ``classname``
``madengine.<label>`` and ``name`` the model (plus ``[docker_file]`` when set), ``time`` the test duration in
seconds. SUCCESS rows pass, FAILURE rows carry ``<failure message="reason">``, SKIPPED rows ``<skipped
message="reason">``, and other statuses ``<error>``. Each testcase has ``<properties>`` with performance, metric,
n_gpus, nnodes, launcher, deployment_type, gpu_architecture and its ``file:line`` (empty values are left out: with
100,000 rows every element counts).
Written with :mod:`xml.etree.ElementTree`, so text is escaped and the XML is well-formed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from madengine.report.load import Source
from madengine.report.table import where

SubElement = ET.SubElement

_PROPERTIES = ("metric", "n_gpus", "nnodes", "launcher", "deployment_type", "gpu_architecture")
#: Characters XML 1.0 cannot hold even escaped; replaced by U+FFFD.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: str) -> str:
    return _INVALID_XML.sub("\ufffd", text) if not text.isprintable() else text


def _seconds(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "0"


def junit_tree(sources: Sequence[Source]) -> ET.ElementTree:
    """The JUnit XML document of ``sources`` (see the module docstring). Empty properties are left out."""
    return ET.ElementTree(junit_element(sources))


def junit_element(sources: Sequence[Source]) -> ET.Element:
    """The ``<testsuites>`` root element of :func:`junit_tree`."""
    root = ET.Element("testsuites", name="madengine")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0.0}
    for source in sources:
        suite = ET.SubElement(root, "testsuite", name=_clean(source.label))
        suite.text = root.text = "\n"
        suite.tail = "\n"
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0.0}
        classname = _clean(f"madengine.{source.label}")
        for row in source.rows:
            name = f"{row.model} [{row.docker_file}]" if row.docker_file else row.model
            case = SubElement(suite, "testcase", {"classname": classname, "name": _clean(name),
                                                  "time": _seconds(row.test_duration)})
            case.tail = "\n"  # one testcase per line: readable, and far cheaper than ET.indent
            props = SubElement(case, "properties", {})
            values = [("performance", row.performance_text), *((p, getattr(row, p)) for p in _PROPERTIES),
                      ("file", where(row))]
            for prop, value in values:
                if value:
                    SubElement(props, "property", {"name": prop, "value": _clean(value)})
            counts["tests"] += 1
            counts["time"] += row.test_duration or 0.0
            reason = _clean(row.reason)
            if row.status == "FAILURE":
                counts["failures"] += 1
                failure = SubElement(case, "failure", {"message": reason or "FAILURE (no reason recorded)",
                                                       "type": "FAILURE"})
                failure.text = _clean(f"{row.model}: FAILURE at {where(row)}"
                                      + (f"\n{row.reason}" if row.reason else "")
                                      + (f"\nlog: {row.log}" if row.log else ""))
            elif row.status == "SKIPPED":
                counts["skipped"] += 1
                SubElement(case, "skipped", {"message": reason or "SKIPPED"})
            elif row.status != "SUCCESS":
                counts["errors"] += 1
                SubElement(case, "error", {"message": _clean(f"unknown status {row.status!r}" + (
                    f": {row.reason}" if row.reason else "")), "type": "UnknownStatus"})
        for key, value in counts.items():
            suite.set(key, f"{value:.3f}" if key == "time" else str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, f"{value:.3f}" if key == "time" else str(int(value)))
    return root


def render_junit(sources: Sequence[Source]) -> str:
    """The JUnit XML text, with an XML declaration, UTF-8."""
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(junit_element(sources), encoding="unicode") + "\n"
