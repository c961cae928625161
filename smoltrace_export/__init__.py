"""Exporters: records → rows, JSON run directories, Hub publishing (results/traces/metrics datasets and the
leaderboard), cleanup and copy-datasets, and a local Hub stand-in for tests (``smoltrace_export.fakehub``)."""
