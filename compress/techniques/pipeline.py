"""Chains of techniques, e.g. prune then quantize."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from compress.registry import TechniqueConfig, UnknownNameError


@dataclass(frozen=True)
class PipelineConfig(TechniqueConfig):
    """Apply ``steps`` in order: any number of transforms, then at most one export."""

    chain: tuple[TechniqueConfig, ...] = ()

    def __post_init__(self) -> None:
        if len(self.chain) < 2:
            raise ValueError(f"a pipeline needs at least 2 steps, got {len(self.chain)}")
        for i, s in enumerate(self.chain):
            if not isinstance(s, TechniqueConfig) or isinstance(s, PipelineConfig):
                raise ValueError(f"chain[{i}] must be a non-pipeline TechniqueConfig, got {s!r}")
            if s.stage == "export" and i != len(self.chain) - 1:
                raise ValueError(f"chain[{i}] ({type(s).__name__}) is an export; only the last step may be")

    def steps(self) -> tuple[TechniqueConfig, ...]:
        return self.chain

    def replace(self, **changes: Any) -> "PipelineConfig":
        """Apply each change to every step that has the field; unknown fields are rejected."""
        chain, used = [], set()
        for step in self.chain:
            mine = {k: v for k, v in changes.items() if k in {f.name for f in dataclasses.fields(step)}}
            chain.append(step.replace(**mine) if mine else step)
            used |= mine.keys()
        unknown = sorted(set(changes) - used)
        if unknown:
            valid = sorted({f.name for s in self.chain for f in dataclasses.fields(s)})
            raise UnknownNameError(
                f"no step of this pipeline has field {unknown[0]!r}; valid: {', '.join(valid) or '(none)'}"
            )
        return PipelineConfig(tuple(chain))
