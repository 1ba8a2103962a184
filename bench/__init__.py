"""Bench suite: `python -m bench NAME [--quick]`. Each benchmark prints JSON lines (DESIGN.md "Quality bars")."""
