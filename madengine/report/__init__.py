"""Reporting on perf.csv files and run summaries: tables, comparisons, HTML, JUnit, reference checks.

One module per job: :mod:`~madengine.report.load` reads perf.csv files (madengine v1, v2 and ours) and run-summary
JSON into :class:`~madengine.report.load.ReportRow` objects; :mod:`~madengine.report.table` renders the terminal
table, JSON and Markdown; :mod:`~madengine.report.compare` compares runs; :mod:`~madengine.report.html` writes the
self-contained HTML page (SVG plots from :mod:`~madengine.report.svg`); :mod:`~madengine.report.junit` writes JUnit
XML; :mod:`~madengine.report.check` is the regression gate against a references YAML;
:mod:`~madengine.report.summary` writes the run summary JSON; :mod:`~madengine.report.relative` computes perf.csv's
``relative_change``. None of them prints: they return text or write the file they are given.
"""
