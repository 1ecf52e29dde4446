"""The admission gate of ``babelseg serve``: bounded running calls, bounded waiting, 503 beyond."""

import threading

import pytest

from babelseg.serving.gate import Gate
from babelseg.serving.uploads import UploadRejected


def test_runs_at_most_concurrency_calls_and_refuses_beyond_the_queue():
    gate = Gate(concurrency=1, queue=1)
    release = threading.Event()
    started = threading.Event()
    results = []

    def blocked():
        started.set()
        assert release.wait(timeout=30)
        return "first"

    def admitted(fn):
        with gate.ticket():
            results.append(gate.run(fn))

    first = threading.Thread(target=admitted, args=(blocked,))
    first.start()
    assert started.wait(timeout=30)
    second = threading.Thread(target=admitted, args=(lambda: "second",))
    second.start()
    for _ in range(3000):  # bounded wait for the second request to be admitted
        if gate.admitted == 2:
            break
        threading.Event().wait(0.01)
    assert gate.admitted == 2 and gate.running == 1
    with pytest.raises(UploadRejected) as e, gate.ticket():
        pass
    assert e.value.status == 503 and "busy" in e.value.message
    release.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert results == ["first", "second"]
    assert gate.admitted == 0 and gate.running == 0 and gate.peak_running == 1


def test_a_failing_call_frees_its_slot():
    gate = Gate(concurrency=1, queue=0)

    def boom():
        raise RuntimeError("model failed")

    with pytest.raises(RuntimeError), gate.ticket():
        gate.run(boom)
    assert gate.admitted == 0 and gate.running == 0
    with gate.ticket():
        assert gate.run(lambda: 7) == 7


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="concurrency >= 1"):
        Gate(concurrency=0, queue=1)
