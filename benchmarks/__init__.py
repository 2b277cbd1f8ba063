"""Benchmarks: scripts over rsna_pkg's public API that time the real code paths and print
figures (ratios measured within one run), never shipped in the wheel. Run them with
``rsna bench NAME`` from a checkout, or ``python -m benchmarks.NAME``."""
