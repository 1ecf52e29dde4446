"""babelseg.data.synth: SynthWorld, the procedural multi-dataset world.

``load_world`` reads and validates a world YAML (the built-in ``default_world.yaml`` by default);
``generate`` writes every dataset of the world in its real on-disk format plus ``datasets.yaml``,
``relations.json``, ``world.yaml`` and ``README.md``; ``render_sample`` renders one image with its
ground truth in memory (world class map, clean and written annotations).
"""

from __future__ import annotations

from babelseg.data.synth.generate import GenerationSummary, generate, relations
from babelseg.data.synth.sample import RenderedSample, render_sample, sample_rng
from babelseg.data.synth.world import World
from babelseg.data.synth.world_yaml import (
    BUILTIN_WORLDS,
    DEFAULT_WORLD_PATH,
    EVIDENCE_WORLD_PATH,
    load_world,
    parse_world,
)

__all__ = [
    "BUILTIN_WORLDS",
    "DEFAULT_WORLD_PATH",
    "EVIDENCE_WORLD_PATH",
    "GenerationSummary",
    "RenderedSample",
    "World",
    "generate",
    "load_world",
    "parse_world",
    "relations",
    "render_sample",
    "sample_rng",
]
