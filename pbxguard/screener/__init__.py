"""Screener: evidence and features in, a Verdict out (`screener.Screener`, `verdict.Verdict`). The package
imports nothing itself, so that the configuration and the supervisor can use `verdict` without numpy."""
