"""The pure core: what failover decides, with the standard library only.

Errors and the vocabulary of kinds and reasons, ``PlatformSpec`` and the built-in table, the
clock protocol, the breaker state machine, pair admission and cool-downs, health statistics,
classification (every provider's error shapes as data) and validation. Nothing here awaits,
does I/O or imports anything outside this package; ``tests/test_layers.py`` holds the line.
"""
