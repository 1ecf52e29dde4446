"""Dataset declarations: what a ``datasets.yaml`` says about each dataset.

Schema (paths are relative to the YAML file's folder unless absolute)::

    datasets:
      - name: street_a                 # unique
        format: semantic-png           # semantic-png | coco-panoptic | coco-instances
        root: street_a                 # folder the split paths are relative to
        task: semantic                 # semantic | panoptic | instance
        annotation: clean              # clean | noisy | boxes
        heldout: false                 # true: never trained on, scored zero-shot
        labels: street_a/labels.yaml   # a label-space YAML file, an inline mapping
                                       # {classes: [...]}, or {card: NAME, ...} (built-in card)
        text_context: "street scenes"  # optional: what the dataset is, for text modes that use it
        splits:
          train: {images: images/train, labels: labels/train}
          val:   {images: images/val, labels: labels/val}
        options: {}                    # format options (reduce_zero_label, label_pattern, ...)
        augmentation: {}               # per-dataset augmentation (see babelseg.data.augment)

Split keys per format:
    semantic-png:   images, labels, [image_pattern, label_pattern, split_file]
    coco-panoptic:  images, json, panoptic
    coco-instances: images, json
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from babelseg.data.sample import Annotation, Task
from babelseg.labels.text_files import read_text_file

FORMATS = ("semantic-png", "coco-panoptic", "coco-instances")
SPLIT_KEYS = {
    "semantic-png": {
        "required": {"images", "labels"},
        "optional": {"image_pattern", "label_pattern", "split_file"},
    },
    "coco-panoptic": {"required": {"images", "json", "panoptic"}, "optional": set()},
    "coco-instances": {"required": {"images", "json"}, "optional": set()},
}
TOP_KEYS = {
    "name",
    "format",
    "root",
    "task",
    "annotation",
    "heldout",
    "labels",
    "text_context",
    "splits",
    "options",
    "augmentation",
}


@dataclass
class DatasetDecl:
    """A validated dataset declaration with resolved paths.

    Attributes:
        name: Unique dataset name.
        format: One of ``FORMATS``.
        root: Absolute dataset root.
        task: Evaluation task.
        annotation: Annotation kind.
        heldout: Held out of training (zero-shot evaluation only).
        labels_spec: The ``labels`` entry as written (resolved by ``resolve_label_space``).
        splits: ``{split: {key: absolute path or pattern}}``.
        options: Format options.
        augmentation: Augmentation spec (mapping), interpreted by ``babelseg.data.augment``.
        text_context: Optional description of the dataset for text modes.
        source: The YAML file it came from (for error messages).
    """

    name: str
    format: str
    root: Path
    task: Task
    annotation: Annotation
    heldout: bool
    labels_spec: Any
    splits: dict[str, dict[str, Any]]
    options: dict[str, Any] = field(default_factory=dict)
    augmentation: dict[str, Any] = field(default_factory=dict)
    text_context: str | None = None
    source: str = ""

    def split(self, split: str) -> dict[str, Any]:
        """The paths of one split; ValueError naming the available splits when missing."""
        if split not in self.splits:
            raise ValueError(
                f"Dataset '{self.name}' ({self.source}) has no split '{split}'; "
                f"it declares {sorted(self.splits)}."
            )
        return self.splits[split]


def _choice(value: Any, choices: tuple[str, ...], what: str, where: str) -> str:
    if value not in choices:
        raise ValueError(f"{where}: {what} '{value}' is not one of {list(choices)}.")
    return str(value)


def parse_declaration(entry: Mapping[str, Any], base_dir: Path, source: str = "") -> DatasetDecl:
    """Validate one declaration mapping and resolve its paths against ``base_dir``."""
    where = f"{source or 'datasets'} (dataset '{entry.get('name', '?')}')"
    if not isinstance(entry, Mapping):
        raise ValueError(
            f"{source}: each dataset entry must be a mapping, got {type(entry).__name__}."
        )
    unknown = set(entry) - TOP_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(TOP_KEYS)}.")
    for key in ("name", "format", "root", "labels", "splits"):
        if key not in entry:
            raise ValueError(f"{where}: missing required key '{key}'.")
    fmt = _choice(entry["format"], FORMATS, "format", where)
    task = Task(_choice(entry.get("task", "semantic"), tuple(t.value for t in Task), "task", where))
    ann = Annotation(
        _choice(
            entry.get("annotation", "clean"),
            tuple(a.value for a in Annotation),
            "annotation",
            where,
        )
    )
    root = Path(entry["root"])
    if not root.is_absolute():
        root = (base_dir / root).resolve()
    splits: dict[str, dict[str, Any]] = {}
    if not isinstance(entry["splits"], Mapping) or not entry["splits"]:
        raise ValueError(f"{where}: 'splits' must map split names to their paths.")
    keys = SPLIT_KEYS[fmt]
    for split_name, spec in entry["splits"].items():
        if not isinstance(spec, Mapping):
            raise ValueError(f"{where}: split '{split_name}' must be a mapping of paths.")
        missing = keys["required"] - set(spec)
        extra = set(spec) - keys["required"] - keys["optional"]
        if missing:
            raise ValueError(
                f"{where}: split '{split_name}' lacks {sorted(missing)} (format {fmt})."
            )
        if extra:
            raise ValueError(
                f"{where}: split '{split_name}' has unknown keys {sorted(extra)}; format {fmt} "
                f"takes "
                f"{sorted(keys['required'] | keys['optional'])}."
            )
        resolved = {}
        for k, v in spec.items():
            if k.endswith("_pattern"):
                resolved[k] = str(v)
            else:
                p = Path(v)
                resolved[k] = p if p.is_absolute() else (root / p)
        splits[str(split_name)] = resolved
    labels = entry["labels"]
    if isinstance(labels, str):
        p = Path(labels)
        labels = p if p.is_absolute() else (base_dir / p).resolve()
    return DatasetDecl(
        name=str(entry["name"]),
        format=fmt,
        root=root,
        task=task,
        annotation=ann,
        heldout=bool(entry.get("heldout", False)),
        labels_spec=labels,
        splits=splits,
        options=dict(entry.get("options") or {}),
        augmentation=dict(entry.get("augmentation") or {}),
        text_context=entry.get("text_context"),
        source=source,
    )


def load_declarations(path: str | Path) -> dict[str, DatasetDecl]:
    """Read a ``datasets.yaml`` file.

    Returns:
        ``{name: DatasetDecl}`` in file order.
    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: invalid YAML or schema, with the file and dataset named.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"Dataset declarations not found: {p}. Generate SynthWorld with "
            "`babelseg synth --out DIR` or write a datasets.yaml (see README)."
        )
    try:
        data = yaml.safe_load(read_text_file(p, what="dataset declarations"))
    except yaml.YAMLError as e:
        raise ValueError(f"{p} is not valid YAML: {e}") from e
    if not isinstance(data, Mapping) or not isinstance(data.get("datasets"), list):
        raise ValueError(f"{p}: expected a top-level 'datasets:' list.")
    decls: dict[str, DatasetDecl] = {}
    for entry in data["datasets"]:
        d = parse_declaration(entry, p.parent.resolve(), source=str(p))
        if d.name in decls:
            raise ValueError(f"{p}: dataset name '{d.name}' is declared twice.")
        decls[d.name] = d
    return decls
