"""The techniques: one module per technique and per framework handler.

:mod:`compress.techniques.catalogue` registers every named technique and imports the
handlers; the registry imports it by name (:data:`compress.registry.BUILTIN`).
"""
