"""Exporters: records → rows, JSON run directories, Hub publishing (results/traces/metrics datasets and the
leaderboard), cleanup and copy-datasets, and a local Hub stand-in for tests (``pytest_smoltrace.testing.hub``).

Also the bottom of the import graph (``pytest_smoltrace → smoltrace_tools → smoltrace_export``): the records of a run
(:mod:`smoltrace_export.records`), the summaries built from them (:mod:`smoltrace_export.summary`) and the one
HTTP-error classifier (:mod:`smoltrace_export.http_errors`), which the plugin and the tools import too."""
