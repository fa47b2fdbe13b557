"""Reliability suite: faults injected into real processes on 127.0.0.1 (see docs/reliability.md).

The one-hour soak is marked ``slow``: pyproject's ``addopts`` deselects it; ``-m slow`` runs it.
"""
