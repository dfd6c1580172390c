"""The co-processor's stream helpers (generators.rtl.streams) in Amaranth's simulator:
every payload comes out once and in order under random stalls on both sides, for the
register slice and for each consumer of the fork, and the handshakes that must come from
flip-flops do."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from generators.rtl.streams import EagerFork, SkidBuffer


def run(dut, outputs, *, count, seed, valid_prob, ready_probs, max_cycles=20_000):
    """Offer ``count`` payloads (0, 1, ...) at ``dut.i`` with probability ``valid_prob``
    per cycle; each output k is ready with probability ``ready_probs[k]``, independently
    of its valid. Returns what each output took, and the valids and readies seen."""
    rng = np.random.default_rng(seed)
    got = [[] for _ in outputs]
    trace = []

    async def testbench(ctx):
        sent = 0
        offering = False
        for cycle in range(max_cycles):
            if all(len(g) == count for g in got):
                return
            if not offering and sent < count and rng.random() < valid_prob:
                offering = True       # once offered, held until taken (stream rules)
            ctx.set(dut.i.valid, offering)
            ctx.set(dut.i.payload, sent)
            readies = [bool(rng.random() < p) for p in ready_probs]
            for o, ready in zip(outputs, readies):
                ctx.set(o.ready, ready)
            valids = [bool(ctx.get(o.valid)) for o in outputs]
            for k, (o, valid, ready) in enumerate(zip(outputs, valids, readies)):
                if valid and ready:
                    got[k].append(ctx.get(o.payload))
            trace.append((offering, bool(ctx.get(dut.i.ready)), valids, readies))
            if offering and ctx.get(dut.i.ready):
                offering = False
                sent += 1
            await ctx.tick()
        raise AssertionError(f"stuck: took {[len(g) for g in got]} of {count}")

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return got, trace


STALLS = [(1.0, 1.0), (0.5, 0.5), (1.0, 0.2), (0.2, 1.0)]


@pytest.mark.parametrize("valid_prob,ready_prob", STALLS)
def test_skid_buffer_passes_every_payload_once_in_order(valid_prob, ready_prob):
    dut = SkidBuffer(16, flush=False)
    got, trace = run(dut, [dut.o], count=300, seed=1, valid_prob=valid_prob,
                     ready_probs=[ready_prob])
    assert got[0] == list(range(300))
    if valid_prob == ready_prob == 1.0:
        # full throughput: after the first payload's cycle in the slice, one per cycle
        taken = [k for k, (_, _, valids, readies) in enumerate(trace) if valids[0]]
        assert taken == list(range(taken[0], taken[0] + 300))


@pytest.mark.parametrize("count", [1, 2, 4])
@pytest.mark.parametrize("valid_prob,ready_prob", STALLS)
def test_eager_fork_gives_each_consumer_every_payload_once(count, valid_prob, ready_prob):
    dut = EagerFork(16, count=count)
    # consumers of different speeds, so that one takes a payload while another waits
    probs = [ready_prob * (1 - 0.6 * k / max(count, 2)) for k in range(count)]
    got, trace = run(dut, list(dut.o), count=200, seed=2 + count, valid_prob=valid_prob,
                     ready_probs=probs)
    for k in range(count):
        assert got[k] == list(range(200)), f"consumer {k}"
    if count > 1 and ready_prob < 1.0:
        # consumers did take the same payload in different cycles
        apart = sum(1 for offering, i_ready, valids, readies in trace
                    if offering and not i_ready and any(v and r for v, r in zip(valids, readies)))
        assert apart > 0


def test_eager_fork_all_ready_is_one_payload_per_cycle():
    dut = EagerFork(16, count=3)
    got, trace = run(dut, list(dut.o), count=100, seed=5, valid_prob=1.0,
                     ready_probs=[1.0, 1.0, 1.0])
    assert all(g == list(range(100)) for g in got)
    assert len(trace) == 100


@pytest.mark.parametrize("count,error", [(0, ValueError), (-1, ValueError),
                                         (2.0, TypeError), (True, TypeError)])
def test_eager_fork_checks_count(count, error):
    with pytest.raises(error, match="count must be"):
        EagerFork(16, count=count)



@pytest.mark.parametrize("make", [lambda: SkidBuffer(16, flush=False),
                                  lambda: EagerFork(16, count=3)], ids=["skid", "fork"])
def test_no_handshake_waits_on_the_other_side_within_a_cycle(make):
    """Under random traffic, every cycle, with ``i.valid`` and every ``ready`` tried both
    ways: the slice's ``i.ready`` and ``o.valid`` do not move (they are flip-flops); the
    fork's ``i.ready`` does not move with ``i.valid``, and no consumer's ``valid`` moves
    with any ``ready`` (another consumer's included), only with ``i.valid``."""
    dut = make()
    outputs = list(dut.o) if isinstance(dut, EagerFork) else [dut.o]
    rng = np.random.default_rng(7)

    async def testbench(ctx):
        offering, sent = False, 0
        for _ in range(400):
            if not offering and rng.random() < 0.7:
                offering = True
            seen = {}        # (i.valid, readies) -> (i.ready, the outputs' valids)
            for valid in (False, True):
                for readies in range(1 << len(outputs)):
                    ctx.set(dut.i.valid, valid)
                    for k, o in enumerate(outputs):
                        ctx.set(o.ready, bool(readies >> k & 1))
                    seen[valid, readies] = (ctx.get(dut.i.ready),
                                            tuple(ctx.get(o.valid) for o in outputs))
            if isinstance(dut, SkidBuffer):
                assert len(set(seen.values())) == 1, seen
            else:
                for readies in range(1 << len(outputs)):
                    assert seen[False, readies][0] == seen[True, readies][0], "i.ready"
                for valid in (False, True):
                    assert len({seen[valid, r][1] for r in range(1 << len(outputs))}) == 1, \
                        "a consumer's valid moved with a ready"
            # the cycle's real values
            ctx.set(dut.i.valid, offering)
            ctx.set(dut.i.payload, sent)
            for o in outputs:
                ctx.set(o.ready, bool(rng.random() < 0.5))
            if offering and ctx.get(dut.i.ready):
                offering, sent = False, sent + 1
            await ctx.tick()
        assert sent > 50

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
