"""AutoUniSeg's step schedule: warm-up, alternating phases, then the final segmentation stage."""

import pytest

from babelseg.unify.schedule import AlternationSchedule


def _phases(schedule: AlternationSchedule) -> str:
    letter = {"warmup": "w", "segmentation": "s", "graph": "g", "final": "f"}
    return "".join(letter[schedule.phase(t, initialised=True)] for t in range(schedule.total_steps))


def test_the_schedule_ends_with_the_final_stage():
    s = AlternationSchedule(
        warmup_steps=3, alternate_every=2, remap_every=4, total_steps=12, final_steps=3
    )
    assert _phases(s) == "wwwssggssfff"
    assert s.final_start == 9
    # remaps at the start of every remap period of the alternation, never in the final stage
    assert [t for t in range(12) if s.remaps_before(t)] == [3, 7]


def test_without_a_final_stage_the_alternation_runs_to_the_end():
    s = AlternationSchedule(warmup_steps=3, alternate_every=2, remap_every=4, total_steps=12)
    assert _phases(s) == "wwwssggssggs" and s.final_start == 12
    assert [t for t in range(12) if s.remaps_before(t)] == [3, 7, 11]


def test_a_final_stage_longer_than_the_run_starts_after_the_warm_up():
    s = AlternationSchedule(
        warmup_steps=3, alternate_every=2, remap_every=4, total_steps=6, final_steps=100
    )
    assert _phases(s) == "wwwfff"
    # not initialised (the warm-up has not derived the unified classes): still the warm-up
    assert s.phase(4, initialised=False) == "warmup"


def test_negative_final_steps_is_an_error():
    with pytest.raises(ValueError, match="final_steps must be >= 0"):
        AlternationSchedule(
            warmup_steps=3, alternate_every=2, remap_every=4, total_steps=6, final_steps=-1
        )
