"""Bench suite: `python -m bench NAME [--quick]`. Each benchmark prints JSON lines with a same-process baseline
(bench/report.py); the README's benchmark section holds the figures."""
