"""Exporters: records → rows, JSON run directories (Hub publishing, leaderboard, cleanup land later)."""
