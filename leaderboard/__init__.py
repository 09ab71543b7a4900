"""Leaderboard: submission checks, aggregation and the static site."""
