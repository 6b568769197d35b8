"""The live walkthrough of the article: ``python -m scenarios demo`` (see docs/demo.md).

An observer of the scenario runner that renders the runner's own results as they happen (a
heading per part, narration, the article's command and what the backend ran, the real output)
and, at the end, the summary matrix and, with ``--report``, a Markdown report with each mode's
traffic path as a Mermaid diagram.

Rooms: ``cli`` (options, setup through scenarios.pipeline, exit codes), ``observer`` (runner
events), ``model`` (what the demo keeps), ``render`` (the terminal), ``outcomes`` and ``matrix``
(what each destination answered, against the article), ``diagram`` (Mermaid), ``report``
(Markdown), ``text`` (English and Chinese).
"""
