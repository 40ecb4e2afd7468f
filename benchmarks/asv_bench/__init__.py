"""asv benchmarks over the same registry as the pytest gate."""

from compress.frameworks import preload

preload()  # before anything can import tensorflow: see compress/frameworks.py
