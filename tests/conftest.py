"""Shared test settings and fixtures: offline, few threads, one tiny SynthWorld per session."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_synthworld(tmp_path_factory):
    """A tiny-scale SynthWorld (every dataset, every format); returns its folder."""
    from babelseg.data.synth.generate import generate

    out = tmp_path_factory.mktemp("synthworld")
    generate(out, scale="tiny", seed=0, workers=1, progress=False, overwrite=True)
    return out


@pytest.fixture
def tiny_run_config(tiny_synthworld, tmp_path):
    """Write a fast run config (hash encoder, small GroupNorm model) and return its path."""

    def make(name: str = "run", **sections) -> str:
        import yaml
        from tiny_runs import tiny_config

        cfg = tiny_config(
            run_dir=tmp_path / name,
            synthworld=tiny_synthworld,
            cache_dir=tmp_path / "cache",
            **sections,
        )
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return str(path)

    return make


@pytest.fixture(scope="session")
def tiny_trained_run(tiny_synthworld, tmp_path_factory):
    """A ``sentence`` run trained for 2 steps on the tiny SynthWorld (hash labels, tiny model),
    shared read-only by the ``babelseg serve`` tests."""
    from tiny_runs import train_tiny_run

    return train_tiny_run(tmp_path_factory.mktemp("trained_run"), tiny_synthworld, steps=2)
