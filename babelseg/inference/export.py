"""Export a trained model as ONNX, TorchScript or a ``torch.export`` program.

The exported model takes RGB images ``float32[B, 3, H, W]`` in 0..1 (the ImageNet
normalisation is inside) and, when no vocabulary is baked in, text embeddings ``float32[K, D]``
as a second input; it returns stride-4 class scores ``float32[B, K, H/4, W/4]`` (``logits``) or
full-resolution class indices ``int64[B, H, W]`` (``labels``).

``H`` and ``W`` must be multiples of 32 (the backbone's coarsest stride): the network's own
padding branches on the size, which an export cannot keep. ONNX and exported programs accept
any batch size and any such ``H x W``; TorchScript (``torch.jit.trace``) is fixed to the example
size it was traced at. babelseg has no custom operators, so the ONNX file runs in onnxruntime
(and TensorRT) as is.

Only the per-pixel recipes (sentence, ms3, autounify, union, multihead) export: the mask
recipes' post-processing keeps a data-dependent number of proposals, which ``torch.export``
cannot trace.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from babelseg.data.collate import IMAGENET_MEAN, IMAGENET_STD
from babelseg.inference.predictor import Predictor
from babelseg.inference.windows import STRIDE
from babelseg.labels.space import LabelSpace

FORMATS = ("onnx", "torchscript", "exported-program")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt", "exported-program": ".pt2"}
OUTPUTS = ("logits", "labels")
SIZE_MULTIPLE = 32
MAX_SIDE = 8192


class ExportableSegmenter(nn.Module):
    """A recipe as a plain tensor-in, tensor-out module.

    Args:
        recipe: The trained recipe (eval mode).
        text: ``float[K, D]`` vocabulary to bake in, or None to take it as the second input.
        dataset: The training dataset the baked vocabulary belongs to (per-dataset recipes),
            or None.
        output: ``logits`` (``float[B, K, H/4, W/4]``) or ``labels`` (``int64[B, H, W]``).
    """

    def __init__(
        self,
        *,
        recipe: nn.Module,
        text: torch.Tensor | None,
        dataset: str | None = None,
        output: str = "logits",
    ) -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"Unknown output '{output}'; valid: {list(OUTPUTS)}.")
        self.recipe = recipe.eval()
        self.dataset = dataset
        self.output = output
        self.baked = text is not None
        self.register_buffer("text", text.float().clone() if text is not None else None)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        """``images float[B, 3, H, W]`` RGB 0..1 (+ ``text float[K, D]``) -> see the class."""
        vocabulary = self.text if self.baked else text
        x = (images - self.mean) / self.std
        logits = self.recipe.semantic_logits(self.recipe(x), vocabulary, dataset=self.dataset)
        if self.output == "logits":
            return logits
        up = F.interpolate(logits, scale_factor=STRIDE, mode="bilinear", align_corners=False)
        return up.argmax(1)


def check_exportable(predictor: Predictor) -> None:
    """Raise ValueError for a recipe that cannot be exported (see the module docstring)."""
    if predictor.predicts_segments:
        raise ValueError(
            f"Recipe '{predictor.cfg.recipe.name}' cannot be exported: its mask post-processing "
            "keeps a data-dependent number of proposals. Export supports the per-pixel recipes "
            "(sentence, ms3, autounify, union, multihead); use `babelseg predict` or "
            "babelseg.load() for the mask recipes."
        )


def example_inputs(
    module: ExportableSegmenter, size: tuple[int, int], *, classes: int, embed_dim: int
) -> tuple[torch.Tensor, ...]:
    """Inputs to trace with: two random images of ``size`` (+ random unit text embeddings)."""
    height, width = size
    if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE or min(size) < 2 * SIZE_MULTIPLE:
        raise ValueError(
            f"Export size {height}x{width}: give multiples of {SIZE_MULTIPLE}, at least "
            f"{2 * SIZE_MULTIPLE}, e.g. 512x512."
        )
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, height, width, generator=generator)  # 2: batch stays dynamic
    if module.baked:
        return (images,)
    text = F.normalize(torch.randn(classes, embed_dim, generator=generator), dim=1)
    return images, text


def _dynamic_shapes(module: ExportableSegmenter) -> dict:
    from torch.export import Dim

    side = MAX_SIDE // SIZE_MULTIPLE
    shapes: dict = {
        "images": {
            0: Dim("batch", min=1, max=256),
            2: SIZE_MULTIPLE * Dim("height_32", min=2, max=side),
            3: SIZE_MULTIPLE * Dim("width_32", min=2, max=side),
        }
    }
    if not module.baked:
        shapes["text"] = {0: Dim("classes", min=2, max=100_000)}
    return shapes


def _write_model(
    module: ExportableSegmenter, inputs: tuple[torch.Tensor, ...], fmt: str, dest: Path
) -> None:
    names = ["images"] if module.baked else ["images", "text"]
    if fmt == "torchscript":
        traced = torch.jit.trace(module, inputs, check_trace=False)
        traced.save(str(dest))
        return
    program = torch.export.export(
        module, inputs, dynamic_shapes=_dynamic_shapes(module), strict=False
    )
    if fmt == "exported-program":
        torch.export.save(program, str(dest))
        return
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise ValueError(
            f"ONNX export needs onnx and onnxscript ({e}); install them with "
            "`pip install onnx onnxscript onnxruntime` (or `pip install -e .[export]`)."
        ) from e
    torch.onnx.export(
        program,
        inputs,
        str(dest),
        input_names=names,
        output_names=[module.output],
        dynamo=True,
        verbose=False,
    )


def export_model(
    predictor: Predictor,
    *,
    fmt: str,
    out: str | Path,
    space: LabelSpace | None = None,
    text: torch.Tensor | None = None,
    dataset: str | None = None,
    output: str = "logits",
    size: tuple[int, int] = (512, 512),
) -> Path:
    """Export ``predictor``'s model to ``out`` plus ``out.json`` describing its inputs/outputs.

    Args:
        predictor: The loaded checkpoint.
        fmt: ``onnx``, ``torchscript`` or ``exported-program``.
        out: Destination file (written under a temporary name, then renamed).
        space: The baked vocabulary's classes (None: text embeddings are the second input).
        text: ``float[K, D]`` of ``space``.
        dataset: The training dataset ``space`` belongs to, or None.
        output: ``logits`` or ``labels``.
        size: ``(H, W)`` of the example image (TorchScript's fixed size).
    Returns:
        The path written.
    Raises:
        ValueError: an unknown format or output, a bad size, or a recipe that cannot export.
    """
    if fmt not in FORMATS:
        raise ValueError(f"Unknown export format '{fmt}'; valid: {list(FORMATS)}.")
    check_exportable(predictor)
    cpu_recipe = predictor.recipe.to("cpu").eval()
    module = ExportableSegmenter(recipe=cpu_recipe, text=text, dataset=dataset, output=output)
    embed_dim = int(next(iter(predictor.texts.values())).shape[1])
    inputs = example_inputs(module, size, classes=8, embed_dim=embed_dim)
    dest = Path(out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    try:
        with torch.no_grad():
            _write_model(module, inputs, fmt, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    describe(dest, fmt=fmt, module=module, space=space, size=size, embed_dim=embed_dim)
    return dest


def describe(
    dest: Path,
    *,
    fmt: str,
    module: ExportableSegmenter,
    space: LabelSpace | None,
    size: tuple[int, int],
    embed_dim: int,
) -> Path:
    """Write ``dest.json``: inputs, outputs, sizes and the vocabulary (names, on-disk values)."""
    fixed = fmt == "torchscript"
    info = {
        "format": fmt,
        "inputs": {
            "images": "float32[B, 3, H, W], RGB in 0..1 (normalisation inside)",
            **({} if module.baked else {"text": f"float32[K, {embed_dim}] text embeddings"}),
        },
        "output": (
            "logits: float32[B, K, H/4, W/4] class scores"
            if module.output == "logits"
            else "labels: int64[B, H, W] class indices"
        ),
        "size": (
            f"exactly {size[0]}x{size[1]} (traced)"
            if fixed
            else f"H and W multiples of {SIZE_MULTIPLE}, up to {MAX_SIDE}; any batch"
        ),
        "labels": None if space is None else space.names,
        "values": None if space is None else [space.value_of(k) for k in range(len(space))],
    }
    path = dest.with_name(dest.name + ".json")
    path.write_text(json.dumps(info, indent=2) + "\n")
    return path


def run_exported(path: str | Path, fmt: str, inputs: tuple[torch.Tensor, ...]) -> np.ndarray:
    """Run an exported file on ``inputs`` (ONNX through onnxruntime) and return its output."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feeds = {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)}
        return session.run(None, feeds)[0]
    if fmt == "torchscript":
        module = torch.jit.load(str(path))
    elif fmt == "exported-program":
        module = torch.export.load(str(path)).module()
    else:
        raise ValueError(f"Unknown export format '{fmt}'; valid: {list(FORMATS)}.")
    with torch.no_grad():
        return module(*inputs).numpy()
