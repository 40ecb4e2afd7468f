"""Runtimes: one module each, behind :class:`Runtime` (name, version, load, predict)."""

from __future__ import annotations

from compress.runtimes.base import Artefact, LoadedArtefact, Runtime, get_runtime

__all__ = ["Artefact", "LoadedArtefact", "Runtime", "get_runtime"]
