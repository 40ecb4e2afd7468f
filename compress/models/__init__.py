"""The model families, by task: ``vision``, ``text``, ``detection``, ``generative``.

Shared by every task: :mod:`compress.models.base` (pieces of the built-in recipes),
:mod:`compress.models.torch_common` and :mod:`compress.models.keras_common` (weights as
arrays, shape-aware loading, training loops). :mod:`compress.models.catalogue` registers
every built-in model; the registry imports it by name (:data:`compress.registry.BUILTIN`).
"""
