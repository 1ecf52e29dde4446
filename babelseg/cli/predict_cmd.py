"""``babelseg predict``: label PNGs and coloured overlays for any vocabulary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from babelseg.cli.inference_args import MODE_EPILOG, add_inference_arguments, inference_options

HELP = "Predict images or folders in any vocabulary (names or 'name: description')."
EPILOG = (
    """examples:
  babelseg predict --run runs/default --labels "road, car, person, sky" photo.jpg --out preds/
  babelseg predict --checkpoint runs/default/ckpt_0002400 --dataset metro_drive \\
      sw/metro_drive/images/val --out preds/
  babelseg predict --run runs/default --labels-file my_labels.txt images/ --out preds/
  babelseg predict --run runs/autounify --space unified sw/metro_drive/images/val --out preds/

--labels-file takes one label per line ("bus" or "bus: a road vehicle for many passengers")
or a label-space YAML. Folders are searched recursively (e.g. leftImg8bit/val/ with one folder
per city). Outputs per image: NAME.png (label values) and NAME_overlay.png, where NAME is the
image's path relative to the folder given, without extension (photo.png and photo.jpg in one
folder become photo_png and photo_jpg); labels.yaml (the vocabulary, value = index) in --out.
Two inputs that would write the same output are an error; an image that cannot be read or
predicted is reported and skipped, and the exit status is then 1.

Mask-classification recipes (lmseg, dataseg) also write COCO files next to the overlays:
panoptic.json + panoptic/NAME.png (COCO panoptic) and instances.json (COCO results, RLE masks),
with category ids = the label space's on-disk values, ready for `babelseg score --task
panoptic|instance`. Image ids are file stems, or the ids of a COCO JSON given with --image-ids
(e.g. the ground truth's). Which classes are things comes from the dataset's label space or a
label-space YAML (is_thing); with --labels, name them with --things.

"""
    + MODE_EPILOG
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", metavar="RUN_DIR", help="run directory (latest checkpoint)")
    src.add_argument("--checkpoint", metavar="CKPT", help="a checkpoint folder")
    vocab = p.add_mutually_exclusive_group(required=True)
    vocab.add_argument("--labels", help='comma-separated labels, e.g. "road, car, person"')
    vocab.add_argument("--labels-file", metavar="FILE", help="labels, one per line, or a YAML")
    vocab.add_argument("--dataset", metavar="NAME", help="a dataset's label space from training")
    vocab.add_argument(
        "--space",
        choices=["unified"],
        help="the learned unified label space (autounify runs)",
    )
    p.add_argument("inputs", nargs="+", help="image files and/or folders of images")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (default 0.5)")
    p.add_argument(
        "--things",
        default="",
        help='comma-separated labels that are things (instances), e.g. "car, person"',
    )
    p.add_argument(
        "--image-ids",
        metavar="COCO.json",
        help="COCO JSON whose images (file_name -> id) give the image ids of the COCO outputs",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    p.add_argument(
        "--max-pixels",
        type=int,
        default=None,
        metavar="N",
        help="largest image read, width x height (default: Pillow's bomb limit, ~179 M)",
    )
    add_inference_arguments(p)


def read_labels_file(path: Path):
    from babelseg.labels.space import LabelSpace
    from babelseg.labels.text_files import read_text_file

    if not path.is_file():
        raise FileNotFoundError(f"Labels file not found: {path}.")
    if path.suffix in (".yaml", ".yml"):
        return LabelSpace.from_yaml(path)
    lines = [ln.strip() for ln in read_text_file(path, what="labels file").splitlines()]
    names = [ln for ln in lines if ln and not ln.startswith("#")]
    if not names:
        raise ValueError(f"{path} lists no labels (one per line).")
    return LabelSpace.from_names(names, name=path.stem)


def mark_things(space, things: str):
    """``space`` with the comma-separated class names in ``things`` marked as things."""
    import dataclasses

    from babelseg.labels.space import LabelSpace

    wanted = [t.strip() for t in things.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in space.names]
    if unknown:
        raise ValueError(f"--things names {unknown}, which are not labels; labels: {space.names}.")
    classes = [dataclasses.replace(c, is_thing=c.is_thing or c.name in wanted) for c in space]
    return LabelSpace(classes, name=space.name, ignore_values=space.ignore_values)


def read_image_ids(path: Path) -> dict[str, object]:
    """``{file stem: image id}`` from the ``images`` of a COCO JSON."""
    from babelseg.evaluation.coco_io import load_json, records

    images = records(load_json(path, what="COCO JSON (--image-ids)"), "images", path)
    return {Path(str(im["file_name"])).stem: im["id"] for im in images}


class CocoOutputs:
    """COCO panoptic PNG + JSON and COCO instance results of the predicted images.

    Args:
        out: Output folder (``panoptic.json``, ``panoptic/``, ``instances.json``).
        space: The vocabulary; its on-disk values are the category ids.
        image_ids: ``{file stem: image id}``; stems not in it use the stem.
    """

    def __init__(self, out: Path, space, image_ids: dict[str, object]) -> None:
        from babelseg.evaluation.coco_io import PanopticWriter

        self.space = space
        self.image_ids = image_ids
        self.category_ids = [space.value_of(k) for k in range(len(space))]
        categories = [
            {"id": cid, "name": c.name, "isthing": int(c.is_thing)}
            for cid, c in zip(self.category_ids, space)
        ]
        self.panoptic = PanopticWriter(
            json_path=out / "panoptic.json", png_dir=out / "panoptic", categories=categories
        )
        self.instances_path = out / "instances.json"
        self.detections: list[dict] = []

    def add(self, stem: str, got, *, file_stem: str | None = None) -> None:
        """Add one image's ``TaskPredictions`` (panoptic and instances); ``stem`` finds its
        image id, ``file_stem`` (default ``stem``) names its panoptic PNG."""
        from babelseg.evaluation.instance import masks_to_coco_results

        image_id = self.image_ids.get(stem, stem)
        segments = [
            {"id": s.id, "category_id": self.category_ids[s.category]}
            for s in got.panoptic.segments
        ]
        self.panoptic.add(
            image_id=image_id,
            ids=got.panoptic.segment_ids,
            segments=segments,
            file_name=f"{file_stem or stem}.png",
        )
        self.detections += masks_to_coco_results(
            masks=got.instances.masks,
            classes=got.instances.classes,
            scores=got.instances.scores,
            image_id=image_id,
            category_ids=self.category_ids,
        )

    def write(self) -> None:
        from babelseg.evaluation.coco_io import write_results_json

        self.panoptic.write()
        write_results_json(self.instances_path, self.detections)


def _vocabulary(args: argparse.Namespace, predictor):
    """``(label space, text embeddings, dataset name or None)`` of the vocabulary asked for."""
    from babelseg.labels.space import LabelSpace

    if args.dataset:
        space, text = predictor.dataset_vocabulary(args.dataset)
        return space, text, args.dataset
    if args.space:
        space, text = predictor.unified_vocabulary()
        return space, text, "unified"
    if args.labels is not None:
        names = [n for n in args.labels.split(",") if n.strip()]
        if not names:
            raise ValueError(
                f'--labels {args.labels!r} names no label; give e.g. --labels "road, car, person".'
            )
        space = LabelSpace.from_names(names, name="custom")
    else:
        space = read_labels_file(Path(args.labels_file))
    return space, predictor.vocabulary(space), None


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import yaml

    from babelseg.data.image_io import read_rgb
    from babelseg.data.image_limits import set_max_image_pixels
    from babelseg.engine.progress import per_item_progress
    from babelseg.inference.api import predict_tasks
    from babelseg.inference.label_png import indices_to_values, write_label_png
    from babelseg.inference.output_names import collect_images, plan_outputs
    from babelseg.inference.predictor import Predictor
    from babelseg.inference.visualize import save_overlay
    from babelseg.labels.space import IGNORE_INDEX

    options = inference_options(args)
    if args.max_pixels is not None:
        set_max_image_pixels(args.max_pixels)
    out = Path(args.out)
    images = plan_outputs(collect_images(args.inputs, exclude=out))
    predictor = Predictor.from_checkpoint(args.run or args.checkpoint, device=args.device)
    space, text, dataset = _vocabulary(args, predictor)
    if args.things:
        space = mark_things(space, args.things)
    out.mkdir(parents=True, exist_ok=True)
    (out / "labels.yaml").write_text(yaml.safe_dump(space.to_dict(), sort_keys=False))
    coco = None
    tasks: tuple[str, ...] = ("semantic",)
    if predictor.predicts_segments and options.single_pass:
        ids = read_image_ids(Path(args.image_ids)) if args.image_ids else {}
        coco = CocoOutputs(out, space, ids)
        tasks = ("semantic", "panoptic", "instances")
    failed: list[str] = []
    for item in per_item_progress(total=len(images), desc="predict").track(images):
        try:  # one bad image (unreadable, a bomb, too big for memory) does not stop the rest
            image = read_rgb(item.source)
            got = predict_tasks(
                predictor,
                image,
                text,
                tasks=tasks,
                is_thing=space.thing_mask,
                dataset=dataset,
                options=options,
            )
        except (OSError, ValueError, RuntimeError, MemoryError) as e:
            print(f"failed: {item.source}: {e}", file=sys.stderr)
            failed.append(str(item.source))
            continue
        pred = got.semantic
        label_file, overlay_file = item.outputs()
        write_label_png(out / label_file, indices_to_values(pred, space))
        save_overlay(
            out / overlay_file,
            image,
            pred,
            names=space.names,
            palette=space.palette,
            alpha=args.alpha,
            ignore_index=IGNORE_INDEX if len(space) <= IGNORE_INDEX else -1,
        )
        if coco is not None:
            coco.add(item.source.stem, got, file_stem=item.name)
        present = [space.names[k] for k in np.unique(pred)]
        print(f"{item.relative}: {', '.join(present)}")
    written = "NAME.png, NAME_overlay.png"
    if coco is not None:
        coco.write()
        written += ", panoptic.json + panoptic/NAME.png, instances.json"
    print(f"wrote {len(images) - len(failed)} of {len(images)} predictions to {out}/ ({written})")
    if failed:
        print(
            f"babelseg predict: error: {len(failed)} image(s) failed (see the 'failed:' lines "
            f"above): {', '.join(failed[:5])}{' ...' if len(failed) > 5 else ''}",
            file=sys.stderr,
        )
    return 1 if failed else 0
