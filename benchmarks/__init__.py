"""Benchmarks (run through ``nox -s bench``)."""
