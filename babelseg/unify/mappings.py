"""The unified nodes ("slots") of a learned label space and their boolean mappings to every
dataset's labels: activity, the OT mappings, pruning and merging, as JSON-safe state."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from babelseg.labels.space import LabelSpace
from babelseg.unify.taxonomy import UnifiedClass, unified_classes
from babelseg.unify.transport import NO_LABEL, boolean_mapping


class SlotMappings:
    """Which slots are active and which label of each dataset each slot maps to.

    Args:
        spaces: The datasets' label spaces, in order (their labels are the graph's label
            nodes, dataset after dataset).
        num_slots: N, the unified nodes.
    """

    def __init__(self, *, spaces: Mapping[str, LabelSpace], num_slots: int) -> None:
        self.datasets = list(spaces)
        self.spaces = dict(spaces)
        self.sizes = {n: len(s) for n, s in spaces.items()}
        self.offsets = dict(zip(self.datasets, np.cumsum([0] + list(self.sizes.values()))[:-1]))
        self.num_slots = num_slots
        self.initialised = False
        self.active = [False] * num_slots
        self.assign: dict[str, list[int]] = {}
        self.class_of_slot: list[int] | None = None

    def active_tensor(self, device: torch.device) -> torch.Tensor:
        """``bool[N]`` active slots."""
        return torch.tensor(self.active, dtype=torch.bool, device=device)

    def start(self, num_active: int) -> None:
        """The first ``num_active`` slots become active (unpruned; mappings follow by remap)."""
        self.active = [r < num_active for r in range(self.num_slots)]
        self.initialised = True
        self.class_of_slot = None

    def remap(self, adjacency: np.ndarray) -> None:
        """Boolean mappings of every dataset from ``float[N, L]`` adjacency (unbalanced OT)."""
        active = np.asarray(self.active, bool)
        for name in self.datasets:
            start = int(self.offsets[name])
            part = adjacency[:, start : start + self.sizes[name]]
            self.assign[name] = boolean_mapping(part, active=active).tolist()

    def prune(self, *, drop_redundant: bool = False) -> None:
        """Drop slots mapped to nothing; merge slots with identical mappings everywhere; with
        ``drop_redundant``, also drop slots none of whose labels is theirs alone
        (:func:`redundant_slots`)."""
        signatures: dict[tuple[int, ...], int] = {}
        self.class_of_slot = []
        labels_of = {r: set(columns) for r, columns in enumerate(self.slot_labels())}
        dropped = set(redundant_slots(labels_of)) if drop_redundant else set()
        for r in range(self.num_slots):
            sig = tuple(self.assign[n][r] for n in self.datasets) if self.active[r] else ()
            if not self.active[r] or all(v == NO_LABEL for v in sig) or r in dropped:
                self.active[r] = False
                self.class_of_slot.append(-1)
                continue
            self.class_of_slot.append(signatures.setdefault(sig, len(signatures)))

    def mapping(self, dataset: str, device: torch.device | None = None) -> torch.Tensor:
        """Boolean mapping of ``dataset`` as ``float[N, K]`` (unmapped and inactive rows 0)."""
        m = torch.zeros(self.num_slots, self.sizes[dataset], device=device)
        for r, c in enumerate(self.assign[dataset]):
            if c != NO_LABEL and self.active[r]:
                m[r, c] = 1.0
        return m

    def continuous_mapping(self, adjacency: torch.Tensor, dataset: str) -> torch.Tensor:
        """``float[N, K]``: the columns of ``dataset`` in the continuous adjacency."""
        start = int(self.offsets[dataset])
        return adjacency[:, start : start + self.sizes[dataset]]

    def slot_labels(self) -> list[list[int]]:
        """Per slot, the label columns (over all datasets) it maps to (none when inactive)."""
        return [
            [
                int(self.offsets[n]) + self.assign[n][r]
                for n in self.datasets
                if self.assign[n][r] != NO_LABEL and self.active[r]
            ]
            for r in range(self.num_slots)
        ]

    def classes(self) -> list[UnifiedClass]:
        """The learned unified classes (after pruning: merged; before: one per active slot)."""
        slots = [r for r in range(self.num_slots) if self.active[r]]
        names = {n: self.spaces[n].names for n in self.datasets}
        return unified_classes(
            {n: [self.assign[n][r] for r in slots] for n in self.datasets},
            names,
            None if self.class_of_slot is None else [self.class_of_slot[r] for r in slots],
        )

    def slot_to_class(self, device: torch.device) -> torch.Tensor:
        """``float[N, C]``: which unified class each slot belongs to."""
        cls = self.class_of_slot
        if cls is None:
            act = [r for r in range(self.num_slots) if self.active[r]]
            cls = [act.index(r) if r in act else -1 for r in range(self.num_slots)]
        num = max(cls) + 1 if cls else 0
        m = torch.zeros(self.num_slots, num, device=device)
        for r, c in enumerate(cls):
            if c >= 0:
                m[r, c] = 1.0
        return m

    def state(self) -> dict:
        """JSON-safe: initialised, active slots, mappings and merged classes."""
        return {
            "initialised": self.initialised,
            "active": list(self.active),
            "assign": {n: list(map(int, a)) for n, a in self.assign.items()},
            "class_of_slot": self.class_of_slot,
        }

    def load_state(self, state: Mapping) -> None:
        """Restore :meth:`state` (missing keys keep their current values)."""
        self.initialised = bool(state.get("initialised", False))
        active = list(state.get("active", self.active))
        if len(active) != self.num_slots:
            raise ValueError(
                f"Saved autounify state has {len(active)} unified slots, this model "
                f"{self.num_slots}; load it with the config it was trained with."
            )
        self.active = [bool(a) for a in active]
        self.assign = {n: [int(v) for v in a] for n, a in state.get("assign", {}).items()}
        cls = state.get("class_of_slot")
        self.class_of_slot = None if cls is None else [int(c) for c in cls]

    def unified_space(self) -> LabelSpace:
        """The unified classes as a label space (readable names; descriptions list the labels)."""
        if not self.initialised:
            raise ValueError(
                "This autounify model has no unified classes yet (stopped during the warm-up); "
                "train past recipe.autounify.warmup_steps."
            )
        entries = []
        for c in self.classes():
            labels = ", ".join(f"{d}: {lab}" for d, lab in c.labels.items() if lab is not None)
            entries.append(f"{c.name}: {labels}")
        return LabelSpace.from_names(entries, name="unified")


def redundant_slots(labels_of: Mapping[int, set]) -> list[int]:
    """Slots to drop: those every label of which other kept slots map to as well.

    Such a slot has no label of its own, so no dataset's annotation tells its class apart from
    the others (after a graph phase moved a label to a better slot, its old slot can be left
    behind this way: metro "rider" with vista "pedestrian" beside metro "rider" with vista
    "cyclist"). Slots with identical label sets are one class and never drop each other; of
    several redundant slots the last is dropped first, re-checking after each drop.

    Args:
        labels_of: ``{slot: {label id}}`` (e.g. :meth:`SlotMappings.slot_labels`' columns);
            slots with no label are neither dropped nor count as covering others.
    Returns:
        The slots to drop, in the order they were dropped.
    """
    keep = {r: frozenset(v) for r, v in labels_of.items() if v}
    dropped: list[int] = []
    while True:
        redundant = []
        for r, own in keep.items():
            others = [v for q, v in keep.items() if q != r and v != own]
            if others and own <= frozenset().union(*others):
                redundant.append(r)
        if not redundant:
            return dropped
        dropped.append(max(redundant))
        del keep[max(redundant)]
