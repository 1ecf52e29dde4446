"""The training loop: one model, several datasets, each scored in its own label space."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from babelseg.data.collate import Batch
from babelseg.data.declaration import load_declarations
from babelseg.data.image_limits import set_max_image_pixels
from babelseg.data.label_source import resolve_label_space
from babelseg.engine import checkpoint as ckpt
from babelseg.engine.builders import (
    build_recipe,
    build_text_encoder_from_config,
    build_train_dataset,
    build_train_loader,
    embed_label_space,
    recipe_context,
    train_dataset_names,
)
from babelseg.engine.config import Config
from babelseg.engine.distributed import (
    DistributedContext,
    all_reduce_sum_,
    cleanup,
    init_distributed,
    wrap_ddp,
)
from babelseg.engine.divergence import GoodCheckpoints, TrainingDiverged, all_finite, weight_norm
from babelseg.engine.init_from import load_network_weights
from babelseg.engine.portable_backbone import STATE_KEY, portable_model_config
from babelseg.engine.progress import Progress, progress_style
from babelseg.engine.run_folder import prepare_run_folder
from babelseg.engine.run_log import RunLogger, save_resolved_config
from babelseg.engine.schedule import build_poly_scheduler
from babelseg.engine.step_lr import scaled_learning_rates
from babelseg.engine.train_setup import (
    _autocast,
    _freeze_backbone,
    _param_groups,
    _prepare_batchnorm,
    _seed_everything,
)
from babelseg.recipes.base import forward_kwargs


@dataclass
class TrainResult:
    """What a finished run leaves behind."""

    run_dir: Path
    steps: int
    last_checkpoint: Path | None
    final_loss: float


class Trainer:
    """Builds everything a config names and runs the loop.

    Args:
        cfg: The resolved run config.
        resume: Continue from the latest checkpoint in ``cfg.run_dir``.
        show_progress: Rank 0 shows a progress bar (True), nothing (False), or by default a bar
            on a terminal and a plain line every ``train.log_every`` steps and at each
            checkpoint when stderr is a file or pipe (batch jobs).
        overwrite: A fresh run may clear an earlier run in ``cfg.run_dir`` (else it refuses).
    """

    def __init__(
        self,
        cfg: Config,
        *,
        resume: bool = False,
        show_progress: bool | None = None,
        overwrite: bool = False,
    ):
        self.cfg = cfg
        self.resume = resume
        self.ctx: DistributedContext = init_distributed(cfg.train.device)
        self.run_dir = Path(cfg.run_dir)
        if not resume:  # a fresh run never mixes with an earlier run's files
            prepare_run_folder(self.run_dir, overwrite=overwrite, clear=self.ctx.is_main)
        self.progress_style = progress_style(show_progress) if self.ctx.is_main else "off"

    # ------------------------------------------------------------------ set-up
    def _setup(self) -> None:
        """Build everything the config names: label spaces and texts, the recipe and its
        optimizer (restored on resume), the data loader, DDP and the run log."""
        cfg = self.cfg
        if cfg.train.threads > 0:
            torch.set_num_threads(cfg.train.threads)
        set_max_image_pixels(cfg.data.max_image_pixels)
        _seed_everything(cfg.train.seed)
        self._setup_labels()
        self._setup_recipe()
        self.start_step = self._restore() if self.resume else 0
        dataset = build_train_dataset(cfg, self.decls, self.spaces, self.train_names)
        self.sampler, self.loader = build_train_loader(
            cfg,
            dataset,
            self.train_names,
            rank=self.ctx.rank,
            world_size=self.ctx.world_size,
            target_spec=self.recipe.target_spec,
            pin_memory=self.device.type == "cuda",
        )
        self.sampler.start_step = self.start_step
        self.model = wrap_ddp(
            _prepare_batchnorm(self.recipe, self.ctx),
            self.ctx,
            find_unused_parameters=self.recipe.find_unused_parameters,
        )
        if cfg.train.compile:  # the forward only: the loss's matching crosses to the host
            self.model = torch.compile(self.model, backend=cfg.train.compile_backend)
        self.logger = RunLogger(
            self.run_dir,
            enabled=self.ctx.is_main,
            resume_step=self.start_step if self.resume else None,
        )
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_resolved_config(self.run_dir, cfg.to_dict())

    def _setup_labels(self) -> None:
        """Declarations, label spaces, their text embeddings and the datasets to train on."""
        cfg = self.cfg
        self.decls = load_declarations(cfg.data.datasets_yaml)
        unknown = [n for n in cfg.data.train if n not in self.decls]
        if unknown:
            raise ValueError(
                f"data.train names unknown datasets {unknown}; {cfg.data.datasets_yaml} declares "
                f"{list(self.decls)}."
            )
        self.spaces = {n: resolve_label_space(self.decls[n]) for n in self.decls}
        encoder = build_text_encoder_from_config(cfg.labels)
        self.texts = {
            n: embed_label_space(self.spaces[n], encoder, cfg.labels, dataset=n) for n in self.decls
        }
        self.embed_dim = int(next(iter(self.texts.values())).shape[1])
        self.train_names = train_dataset_names(cfg, self.decls, report=self.ctx.is_main)

    def _setup_recipe(self) -> None:
        """The recipe (from ``init_from`` weights when given), on the device, with its optimizer
        and learning-rate schedule."""
        cfg = self.cfg
        context = recipe_context(cfg, self.spaces, self.texts, self.train_names)
        recipe = build_recipe(cfg, embed_dim=self.embed_dim, context=context)
        recipe.use_reduction(all_reduce_sum_)
        if cfg.train.init_from and not self.resume:
            report = load_network_weights(cfg.train.init_from, recipe)
            if self.ctx.is_main:
                print(report, file=sys.stderr)
        self.frozen: list[torch.nn.Module] = []
        if cfg.train.freeze_encoder:
            self.frozen = _freeze_backbone(recipe, ("backbone", "decoder"))
        elif cfg.train.freeze_backbone:
            self.frozen = _freeze_backbone(recipe)
        self.device = self.ctx.device
        self.recipe = recipe.to(self.device)
        self.texts_dev = {n: t.to(self.device) for n, t in self.texts.items()}
        self.optimizer = torch.optim.AdamW(_param_groups(self.recipe, cfg), lr=cfg.train.lr)
        self.scheduler = build_poly_scheduler(
            self.optimizer,
            total_steps=cfg.train.steps,
            warmup_steps=cfg.train.warmup_steps,
            power=cfg.train.poly_power,
        )

    def _restore(self) -> int:
        """``--resume``: weights, optimizer, schedule and recipe state of the latest checkpoint;
        returns its step."""
        latest = ckpt.latest_checkpoint(self.run_dir)
        if latest is None:
            raise FileNotFoundError(
                f"--resume: no checkpoint in {self.run_dir}. Start the run without --resume."
            )
        loaded = ckpt.load_checkpoint(latest, model=self.recipe, optimizer=self.optimizer)
        if loaded.scheduler_state:
            self.scheduler.load_state_dict(loaded.scheduler_state)
        self.recipe.load_extra_state(loaded.state.get("recipe_state", {}))
        return loaded.step

    def _normalisers(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The recipe's loss counts summed over processes / world size (at least 1 each)."""
        counts = self.recipe.loss_counts(batch)
        names = sorted(counts)
        values = torch.tensor([counts[n] for n in names], device=self.device)
        all_reduce_sum_(values)
        values = (values / self.ctx.world_size).clamp(min=1.0)
        return {n: values[i] for i, n in enumerate(names)}

    def _checkpoint_state(self) -> dict:
        state = {
            "config": self.cfg.to_dict(),
            "embed_dim": self.embed_dim,
            "train_datasets": self.train_names,
            "label_spaces": {n: s.to_dict() for n, s in self.spaces.items()},
            "heldout": {n: d.heldout for n, d in self.decls.items()},
            STATE_KEY: portable_model_config(self.cfg.to_dict()["model"], self.recipe),
        }
        state["recipe_state"] = self.recipe.extra_state()
        return state

    def _set_train_mode(self, mode: bool) -> None:
        self.recipe.train(mode)
        for module in self.frozen:
            module.eval()

    def _forward(self, batch: Batch, texts: dict[str, torch.Tensor]):
        """The model on a batch; recipes with ``forward_takes_texts`` also get each image's
        label-space embeddings (category-guided decoding), those with
        ``forward_takes_datasets`` each image's dataset (dataset-specific modules)."""
        return self.model(
            batch.images,
            **forward_kwargs(
                self.recipe, texts=[texts[d] for d in batch.datasets], datasets=batch.datasets
            ),
        )

    def _step_texts(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The training datasets' label embeddings of this step (learned prompts make them
        trainable; a recipe may recompute only those of the batch's datasets)."""
        return self.recipe.step_texts(
            {n: self.texts_dev[n] for n in self.train_names}, datasets=set(batch.datasets)
        )

    def _exported_texts(self) -> dict[str, torch.Tensor]:
        """Every dataset's label embeddings as the trained recipe sees them (for inference)."""
        was_training = self.recipe.training
        self.recipe.eval()
        with torch.no_grad():
            texts = self.recipe.step_texts(self.texts_dev)
        self._set_train_mode(was_training)
        return {n: t.detach().float().cpu() for n, t in texts.items()}

    def _save(self, step: int, good: GoodCheckpoints) -> Path | None:
        if not all_finite(self.recipe.parameters()):  # never write weights that are not numbers
            raise TrainingDiverged(good.message(loss=float("nan"), step=step, datasets=[]))
        path = None
        if self.ctx.is_main:
            path = ckpt.save_checkpoint(
                self.run_dir,
                step=step,
                model=self.recipe,
                optimizer=self.optimizer,
                scheduler_state=self.scheduler.state_dict(),
                extra_tensors={f"text/{n}": t for n, t in self._exported_texts().items()},
                state=self._checkpoint_state(),
                keep_last=self.cfg.train.keep_last,
                keep=good.last_good,
            )
        return path

    # ------------------------------------------------------------------ loop
    def train(self) -> TrainResult:
        """Run until ``train.steps``; returns where the results are."""
        self._setup()
        cfg, ctx = self.cfg, self.ctx
        total = cfg.train.steps
        last_ckpt: Path | None = ckpt.latest_checkpoint(self.run_dir) if self.resume else None
        good = GoodCheckpoints(resumed_from=last_ckpt)
        bar = Progress(
            total=total,
            initial=self.start_step,
            desc="train",
            every=cfg.train.log_every,
            style=self.progress_style,
        )
        loss_value = float("nan")
        t_last, images_since = time.perf_counter(), 0
        self._set_train_mode(True)
        data_iter = iter(self.loader)
        try:
            for step in range(self.start_step, total):
                # one call; from pinned memory (CUDA) the copies overlap with the host's work
                batch: Batch = next(data_iter).to(self.device, non_blocking=True)
                normalisers = self._normalisers(batch)
                self.recipe.on_step_start(step)
                with _autocast(cfg, self.device):
                    output = self._forward(batch, step_texts := self._step_texts(batch))
                    result = self.recipe.loss(output, batch, step_texts, normalisers=normalisers)
                good.check_loss(
                    result.total, result.per_dataset, step=step + 1, world_size=ctx.world_size
                )
                self.optimizer.zero_grad(set_to_none=True)
                result.total.backward()
                grad_norm = (
                    torch.nn.utils.clip_grad_norm_(self.recipe.parameters(), cfg.train.grad_clip)
                    if cfg.train.grad_clip > 0
                    else torch.tensor(0.0)
                )
                norm_before = weight_norm(self.recipe.parameters())
                # the recipe's factor for this batch (DaTaSeg's per-dataset lr), this step only
                with scaled_learning_rates(
                    self.optimizer, self.recipe.lr_multiplier(batch.datasets)
                ):
                    self.optimizer.step()
                good.step_taken(norm_before, weight_norm(self.recipe.parameters()))
                self.scheduler.step()
                self.recipe.on_step_end(step)
                done = step + 1
                images_since += batch.images.shape[0] * ctx.world_size
                lr = self.optimizer.param_groups[-1]["lr"]
                if done % cfg.train.log_every == 0 or done == total:
                    loss_value = float(result.total.detach())  # syncs a GPU: log steps only
                    now = time.perf_counter()
                    ips = images_since / max(now - t_last, 1e-9)
                    t_last, images_since = now, 0
                    scalars = {
                        "loss": loss_value,
                        "lr": lr,
                        "grad_norm": float(grad_norm),
                        "images_per_s": ips,
                        **{f"loss/{n}": float(v) for n, v in result.per_dataset.items()},
                        **{k: float(v) for k, v in result.logs.items()},
                    }
                    self.logger.log(done, **scalars)
                    bar.set_values(loss=loss_value, lr=lr, images_per_s=ips)
                bar.update(1)
                if done % cfg.train.checkpoint_every == 0 or done == total:
                    saved = self._save(done, good)
                    good.saved(saved)
                    last_ckpt = saved or last_ckpt
                    if saved is not None:
                        bar.note(f"checkpoint at step {done}: {saved}")
        finally:
            bar.close()
            self.logger.close()
        return TrainResult(
            run_dir=self.run_dir, steps=total, last_checkpoint=last_ckpt, final_loss=loss_value
        )

    def close(self) -> None:
        cleanup()


def train(
    cfg: Config,
    *,
    resume: bool = False,
    show_progress: bool | None = None,
    overwrite: bool = False,
) -> TrainResult:
    """Train a config to the end (library entry point of ``babelseg train``); a fresh run into
    a folder holding an earlier run needs ``overwrite=True`` (see ``engine.run_folder``)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    trainer = Trainer(cfg, resume=resume, show_progress=show_progress, overwrite=overwrite)
    try:
        return trainer.train()
    finally:
        trainer.close()
