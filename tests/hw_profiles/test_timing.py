"""hw_profiles.timing: the low-percentile ratio to the interleaved reference, the protocol's block split,
and the session options (one shared thread pool, or no spinning) that keep sessions from slowing each other."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from hw_profiles.timing import (
    FULL,
    RUN_PERCENTILE,
    Protocol,
    RelativeTimer,
    measurement_options,
    share_thread_pool,
    thread_pool,
)

pytestmark = pytest.mark.timing  # busy-loop timings: meaningless beside another CPU-heavy worker

ROOT = Path(__file__).resolve().parents[2]

SPIN = "session.intra_op.allow_spinning"


def _has_spin_entry(so: object) -> bool:
    try:
        so.get_session_config_entry(SPIN)  # type: ignore[attr-defined]
    except RuntimeError:  # onnxruntime raises for an entry never set
        return False
    return True


PROTOCOL = Protocol(warmup_s=0.0, blocks=20, block_s=0.01, max_block=5, ref_block=5, rounds=1)


class BusyWait:
    """A stand-in for a session run that spins for ``seconds``; every ``slow_every``-th call spins ``slow``x as
    long (another process taking the core)."""

    def __init__(self, seconds: float, slow_every: int = 0, slow: float = 1.0) -> None:
        self.seconds, self.slow_every, self.slow, self.calls = seconds, slow_every, slow, 0

    def __call__(self) -> None:
        self.calls += 1
        hindered = self.slow_every and self.calls % self.slow_every == 0
        end = time.perf_counter() + self.seconds * (self.slow if hindered else 1.0)
        while time.perf_counter() < end:
            pass


def test_ratio_is_taken_at_the_unhindered_speed() -> None:
    # the model takes 2x the reference; 2 of its runs in 5 are hindered 3x: a median would read 2x-6x
    timer = RelativeTimer(BusyWait(0.0004), PROTOCOL)
    timer.measure("m", BusyWait(0.0008, slow_every=5, slow=3.0), PROTOCOL.blocks)
    timer.measure("h", BusyWait(0.0008, slow_every=2, slow=3.0), PROTOCOL.blocks)
    assert abs(timer.timing("m").ratio - 2.0) < 0.3
    assert abs(timer.timing("h").ratio - 2.0) < 0.3  # half its runs hindered: p10 still reads the machine
    assert timer.timing("h").ratio_p90 > 3.0  # the per-block ratios do see the hindered runs
    assert abs(timer.reference_ms - 0.4) < 0.1
    t = timer.timing("m")
    assert t.runs == PROTOCOL.blocks * PROTOCOL.max_block and t.blocks == PROTOCOL.blocks
    assert RUN_PERCENTILE == 10


def test_split_spreads_blocks_over_passes() -> None:
    assert FULL.split(20, 5) == [4, 4, 4, 4, 4]
    assert FULL.split(10, 3) == [4, 3, 3] and sum(FULL.split(7, 7)) == 7
    assert FULL.model_blocks >= FULL.blocks and FULL.model_rounds > 1


def test_without_a_shared_pool_several_threads_do_not_spin() -> None:
    assert thread_pool(1) == "single" and thread_pool(2) == "own, no spinning"  # the test process shares none
    one, two = measurement_options(1), measurement_options(2)
    assert one.intra_op_num_threads == 1 and not _has_spin_entry(one)
    assert two.intra_op_num_threads == 2 and two.get_session_config_entry(SPIN) == "0"
    share_thread_pool(1)  # one thread needs no pool: nothing changes in this process
    assert thread_pool(2) == "own, no spinning"


SHARED = """
import numpy as np, onnxruntime as ort
from hw_profiles.benches import reference_bench
from hw_profiles.timing import Runner, measurement_options, share_thread_pool, thread_pool
share_thread_pool(2)
share_thread_pool(2)  # the same size again: fine
assert thread_pool(2) == "shared" and measurement_options(2).use_per_session_threads is False
a = Runner(reference_bench(), ["CPUExecutionProvider"], 2, seed=0)
b = Runner(reference_bench(), ["CPUExecutionProvider"], 2, seed=0)
np.testing.assert_allclose(a.session.run(None, a.feeds)[0], b.session.run(None, a.feeds)[0], rtol=1e-6)
for bad in (lambda: share_thread_pool(3), lambda: measurement_options(1)):
    try:
        bad()
    except ValueError as e:
        assert "shared pool of 2 threads" in str(e), e
    else:
        raise AssertionError("no error")
print("ok")
"""


def test_shared_pool_serves_every_session_of_its_process() -> None:
    # in a child process: onnxruntime's shared pool is for the whole process and refuses sessions with own pools
    out = subprocess.run([sys.executable, "-c", SHARED], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
