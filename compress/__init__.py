"""compress-bench: regression benchmarks for model compression.

Entry points: :mod:`compress.registry` (what exists), :class:`compress.runner.Runner`
(run a pair), ``python -m compress`` (the CLI). Import ``compress`` before
``tensorflow``: see :mod:`compress.frameworks`.
"""

__version__ = "0.1.0"
