"""RegisterFile in Amaranth's simulator, driven by an AXI4-Lite manager written as async
testbench helpers (with a protocol check: BVALID/RVALID and their payload must be held
until the handshake)."""

import random

import pytest
from amaranth.sim import Simulator

from generators.config import load_config
from generators.regmap import ID_VALUE, build_regmap
from generators.rtl.axi import AxiResp
from generators.rtl.csr import RegisterFile, member_name

CONFIGS = ["default", "tiny"]
TIMEOUT = 64            # cycles any one channel may take before we call it a hang
UNMAPPED = (0x01C, 0x028, 0x02C, 0x03C, 0x06C, 0x078, 0x07C, 0x0C8, 0x400, 0xFFC)


# --- AXI4-Lite manager --------------------------------------------------------------------

async def _send(ctx, bus, valid, ready, values, *, what):
    """Drive one address/data beat until its handshake; returns after the handshake edge."""
    for sig, value in values.items():
        ctx.set(getattr(bus, sig), value)
    ctx.set(getattr(bus, valid), 1)
    for _ in range(TIMEOUT):
        hs = ctx.get(getattr(bus, ready))
        await ctx.tick()
        if hs:
            ctx.set(getattr(bus, valid), 0)
            return
    raise AssertionError(f"{what}: no {ready} within {TIMEOUT} cycles")


async def _response(ctx, bus, valid, ready, payload, *, rng, ready_prob, what):
    """Take one B or R beat with random READY; check the beat is held until taken."""
    held = None
    for _ in range(TIMEOUT * 4):
        v = ctx.get(getattr(bus, valid))
        beat = tuple(ctx.get(getattr(bus, p)) for p in payload)
        if held is not None:
            assert v, f"{what}: {valid} dropped before {ready}"
            assert beat == held, f"{what}: payload changed while waiting: {held} -> {beat}"
        elif v:
            held = beat
        take = rng.random() < ready_prob
        ctx.set(getattr(bus, ready), take)
        await ctx.tick()
        if take and v:
            ctx.set(getattr(bus, ready), 0)
            return held
    raise AssertionError(f"{what}: no {valid} within {TIMEOUT * 4} cycles")


async def axi_write(ctx, bus, addr, data, strb=0xF, *, order="together", gap=0, rng=None,
                    ready_prob=1.0):
    """One write; ``order`` is "together", "aw_first" or "w_first" (``gap`` idle cycles
    between the two). Returns BRESP."""
    rng = rng or random.Random(0)
    aw = {"awaddr": addr, "awprot": 0}
    w = {"wdata": data, "wstrb": strb}
    if order == "together":
        for sig, value in {**aw, **w}.items():
            ctx.set(getattr(bus, sig), value)
        ctx.set(bus.awvalid, 1)
        ctx.set(bus.wvalid, 1)
        pending = {"awvalid": "awready", "wvalid": "wready"}
        for _ in range(TIMEOUT):
            done = [v for v, r in pending.items() if ctx.get(getattr(bus, r))]
            await ctx.tick()
            for v in done:
                ctx.set(getattr(bus, v), 0)
                del pending[v]
            if not pending:
                break
        else:
            raise AssertionError(f"write {addr:#x}: AW/W not accepted: {pending}")
    else:
        first, second = ((("awvalid", "awready", aw), ("wvalid", "wready", w))
                         if order == "aw_first" else
                         (("wvalid", "wready", w), ("awvalid", "awready", aw)))
        await _send(ctx, bus, *first, what=f"write {addr:#x}")
        for _ in range(gap):
            await ctx.tick()
        await _send(ctx, bus, *second, what=f"write {addr:#x}")
    (bresp,) = await _response(ctx, bus, "bvalid", "bready", ("bresp",), rng=rng,
                               ready_prob=ready_prob, what=f"write {addr:#x}")
    return bresp


async def axi_read(ctx, bus, addr, *, rng=None, ready_prob=1.0):
    """One read. Returns (RDATA, RRESP)."""
    rng = rng or random.Random(0)
    await _send(ctx, bus, "arvalid", "arready", {"araddr": addr, "arprot": 0},
                what=f"read {addr:#x}")
    return await _response(ctx, bus, "rvalid", "rready", ("rdata", "rresp"), rng=rng,
                           ready_prob=ready_prob, what=f"read {addr:#x}")


# --- harness --------------------------------------------------------------------------------

def run(rf, body, *background):
    sim = Simulator(rf)
    sim.add_clock(1e-8)
    for bg in background:
        sim.add_testbench(bg, background=True)
    sim.add_testbench(body)
    sim.run()


@pytest.fixture(params=CONFIGS)
def rm(request):
    return build_regmap(load_config(request.param))


def outputs(rf):
    """Every Out member except the bus, as a dict name -> signal."""
    return {name: getattr(rf, name) for name, member in rf.signature.members.items()
            if name != "bus" and member.flow.name == "Out"}


def stored_mask(reg):
    """Bits of ``reg`` that read back what was written (rw fields)."""
    return sum(f.mask for f in reg.fields if f.access == "rw")


# --- tests ----------------------------------------------------------------------------------

def test_members_and_argument_checks(rm):
    rf = RegisterFile(rm)
    members = rf.signature.members
    for name in ("ctrl_start", "ctrl_soft_reset", "ctrl_clear_counters", "ctrl_irq_en",
                 "status_busy", "status_done", "status_done_set", "status_error", "m", "n",
                 "k", "a_addr_lo", "bias_addr_hi", "a_stride", "format_a", "format_out",
                 "flags_relu", "cycles", "macs", "write_bytes"):
        assert name in members, name
    assert members["ctrl_start"].flow.name == "Out" and members["ctrl_start"].shape == 1
    assert members["status_error"].flow.name == "In"
    assert members["status_error"].shape == 8
    assert members["status_done_set"].flow.name == "In"
    assert members["status_done"].flow.name == "Out"
    assert members["macs"].flow.name == "In" and members["macs"].shape == 64
    for const in ("id", "version_major", "caps_array_rows", "max_dim", "cycles_lo"):
        assert const not in members
    assert member_name(rm.register("M"), rm.field("M", "VALUE")) == "m"
    with pytest.raises(TypeError, match="regmap must be a RegisterMap"):
        RegisterFile(load_config("tiny"))


def test_reset_consts_and_ro(rm):
    rf = RegisterFile(rm)
    rng = random.Random(1)
    ro_values = {}

    async def body(ctx):
        for reg in rm.registers:
            for f in reg.fields:
                if f.access == "ro" and reg.kind == "reg":
                    ro_values[(reg.name, f.name)] = rng.randrange(1 << f.width)
                    ctx.set(rf.field_signal(reg.name, f.name), ro_values[(reg.name, f.name)])
        for reg in rm.registers:
            if reg.kind != "reg":
                continue
            data, resp = await axi_read(ctx, rf.bus, reg.offset)
            assert resp == AxiResp.OKAY, reg.name
            want = reg.reset | sum(ro_values.get((reg.name, f.name), 0) << f.lsb
                                   for f in reg.fields)
            assert data == want, f"{reg.name}: read {data:#010x}, want {want:#010x}"
            if reg.name == "ID":
                assert data == ID_VALUE
        # ro inputs are sampled when read, and writes do not touch them
        ctx.set(rf.status_busy, 1)
        ctx.set(rf.status_error, 0x5A)
        assert await axi_write(ctx, rf.bus, rm.offset("STATUS"), 0xFFFF_FFFC) == AxiResp.OKAY
        data, _ = await axi_read(ctx, rf.bus, rm.offset("STATUS"))
        assert rm.unpack("STATUS", data) == {"BUSY": 1, "DONE": 0, "ERROR": 0x5A}
        ctx.set(rf.status_busy, 0)
        data, _ = await axi_read(ctx, rf.bus, rm.offset("STATUS"))
        assert rm.unpack("STATUS", data)["BUSY"] == 0

    run(rf, body)


@pytest.mark.parametrize("order", ["together", "aw_first", "w_first"])
def test_rw_with_strobes(rm, order):
    rf = RegisterFile(rm)
    rng = random.Random(order)
    rw_regs = [r for r in rm.registers if any(f.access == "rw" for f in r.fields)]

    async def body(ctx):
        model = {r.name: r.reset & stored_mask(r) for r in rw_regs}
        for _ in range(3):
            for reg in rng.sample(rw_regs, len(rw_regs)):
                data = rng.getrandbits(32)
                strb = rng.choice([0xF, 0x0, 0x1, 0x2, 0x4, 0x8, rng.randrange(16)])
                if reg.name == "CTRL":
                    data &= ~0b111          # no w1p pulses here
                gap = rng.randrange(4)
                resp = await axi_write(ctx, rf.bus, reg.offset, data, strb, order=order,
                                       gap=gap)
                assert resp == AxiResp.OKAY
                enable = sum(0xFF << 8 * i for i in range(4) if strb >> i & 1)
                mask = stored_mask(reg) & enable
                model[reg.name] = (model[reg.name] & ~mask) | (data & mask)
                got, resp = await axi_read(ctx, rf.bus, reg.offset)
                assert resp == AxiResp.OKAY
                assert got & stored_mask(reg) == model[reg.name], \
                    f"{reg.name} strb {strb:#x}: read {got:#010x}, want {model[reg.name]:#010x}"
                # the hardware sees the same stored values
                for f in reg.fields:
                    if f.access == "rw":
                        want = (model[reg.name] >> f.lsb) & ((1 << f.width) - 1)
                        assert ctx.get(rf.field_signal(reg.name, f.name)) == want, \
                            f"{reg.name}.{f.name}"

    run(rf, body)


def test_w1p_pulses_once(rm):
    rf = RegisterFile(rm)
    pulses = {name: [] for name in ("ctrl_start", "ctrl_soft_reset", "ctrl_clear_counters")}
    cycle = [0]

    async def monitor(ctx):
        while True:
            await ctx.tick()
            cycle[0] += 1
            for name, log in pulses.items():
                if ctx.get(getattr(rf, name)):
                    log.append(cycle[0])

    async def body(ctx):
        ctrl = rm.offset("CTRL")
        for field, name in (("START", "ctrl_start"), ("SOFT_RESET", "ctrl_soft_reset"),
                            ("CLEAR_COUNTERS", "ctrl_clear_counters")):
            before = {n: len(log) for n, log in pulses.items()}
            assert await axi_write(ctx, rf.bus, ctrl, rm.pack("CTRL", **{field: 1})) == 0
            for _ in range(4):
                await ctx.tick()
            for n, log in pulses.items():
                assert len(log) - before[n] == (1 if n == name else 0), \
                    f"writing CTRL.{field}: {n} pulsed {len(log) - before[n]} times"
            # w1p fields read as 0
            data, _ = await axi_read(ctx, rf.bus, ctrl)
            assert data == 0
        # writing 0, or 1 with the byte disabled: no pulse; IRQ_EN is stored
        before = {n: len(log) for n, log in pulses.items()}
        assert await axi_write(ctx, rf.bus, ctrl, rm.pack("CTRL", IRQ_EN=1)) == 0
        assert await axi_write(ctx, rf.bus, ctrl, rm.pack("CTRL", START=1, IRQ_EN=1),
                               strb=0b0010) == 0
        for _ in range(4):
            await ctx.tick()
        assert {n: len(log) for n, log in pulses.items()} == before
        assert ctx.get(rf.ctrl_irq_en) == 1
        data, _ = await axi_read(ctx, rf.bus, ctrl)
        assert data == rm.pack("CTRL", IRQ_EN=1)
        # back-to-back START writes: one pulse each
        for order in ("together", "aw_first", "w_first"):
            assert await axi_write(ctx, rf.bus, ctrl, rm.pack("CTRL", START=1), order=order)\
                == 0
        for _ in range(4):
            await ctx.tick()
        assert len(pulses["ctrl_start"]) == 4

    run(rf, body, monitor)
    for name, log in pulses.items():
        # each pulse lasts exactly one cycle: no two consecutive cycles
        assert all(b - a > 1 for a, b in zip(log, log[1:])), f"{name}: {log}"


def test_w1c_set_and_clear(rm):
    rf = RegisterFile(rm)
    status = rm.offset("STATUS")

    async def done(ctx):
        return rm.unpack("STATUS", (await axi_read(ctx, rf.bus, status))[0])["DONE"]

    async def body(ctx):
        assert ctx.get(rf.status_done) == 0 and await done(ctx) == 0
        ctx.set(rf.status_done_set, 1)
        await ctx.tick()
        ctx.set(rf.status_done_set, 0)
        assert ctx.get(rf.status_done) == 1
        assert await done(ctx) == 1
        # writing 0, or 1 with byte 0 disabled, does not clear
        assert await axi_write(ctx, rf.bus, status, 0) == AxiResp.OKAY
        assert await axi_write(ctx, rf.bus, status, rm.pack("STATUS", DONE=1), strb=0xE) == 0
        assert await done(ctx) == 1 and ctx.get(rf.status_done) == 1
        # writing 1 clears
        assert await axi_write(ctx, rf.bus, status, rm.pack("STATUS", DONE=1)) == 0
        assert await done(ctx) == 0 and ctx.get(rf.status_done) == 0
        # A one-cycle set pulse at edge d + 1 of a clearing write, for every d: the write
        # clears at the edge after which BVALID rises; a set at that same edge must win.
        bus = rf.bus
        outcomes = []
        for d in range(8):
            ctx.set(rf.status_done_set, 1)
            await ctx.tick()
            ctx.set(rf.status_done_set, 0)
            ctx.set(bus.awaddr, status)
            ctx.set(bus.wdata, rm.pack("STATUS", DONE=1))
            ctx.set(bus.wstrb, 0xF)
            ctx.set(bus.awvalid, 1)
            ctx.set(bus.wvalid, 1)
            edge, b_edge, b_done = 0, None, False
            while not (b_done and edge > d):
                ctx.set(rf.status_done_set, edge == d)
                aw_hs = ctx.get(bus.awvalid) and ctx.get(bus.awready)
                w_hs = ctx.get(bus.wvalid) and ctx.get(bus.wready)
                b_hs = ctx.get(bus.bvalid) and not b_done
                ctx.set(bus.bready, b_hs)
                await ctx.tick()
                edge += 1
                if aw_hs:
                    ctx.set(bus.awvalid, 0)
                if w_hs:
                    ctx.set(bus.wvalid, 0)
                b_done |= b_hs
                if b_edge is None and ctx.get(bus.bvalid):
                    b_edge = edge
                assert edge < TIMEOUT
            ctx.set(rf.status_done_set, 0)
            ctx.set(bus.bready, 0)
            got = await done(ctx)
            assert got == (d + 1 >= b_edge), \
                f"set at edge {d + 1}, clear at edge {b_edge}: DONE = {got}"
            outcomes.append(got)
        assert set(outcomes) == {0, 1}

    run(rf, body)


def test_counter_lo_latches_hi(rm):
    rf = RegisterFile(rm)
    rng = random.Random(5)

    async def body(ctx):
        for c in rm.counters:
            sig = getattr(rf, c.name.lower())
            x, y = rng.getrandbits(64), rng.getrandbits(64)
            ctx.set(sig, x)
            lo, resp = await axi_read(ctx, rf.bus, rm.offset(c.lo))
            assert resp == AxiResp.OKAY and lo == x & 0xFFFF_FFFF
            ctx.set(sig, y)                 # the counter moves between the two reads
            hi, resp = await axi_read(ctx, rf.bus, rm.offset(c.hi))
            assert resp == AxiResp.OKAY
            assert hi == x >> 32, f"{c.name}: HI {hi:#x} is not the latched {x >> 32:#x}"
            hi_again, _ = await axi_read(ctx, rf.bus, rm.offset(c.hi))
            assert hi_again == x >> 32
            lo, _ = await axi_read(ctx, rf.bus, rm.offset(c.lo))
            hi, _ = await axi_read(ctx, rf.bus, rm.offset(c.hi))
            assert (hi << 32 | lo) == y
            # writes to a counter are refused
            assert await axi_write(ctx, rf.bus, rm.offset(c.lo), 0) == AxiResp.SLVERR

    run(rf, body)


def test_live_counter_reads_are_tear_free(rm):
    """A counter that increments every cycle across a 32-bit carry: every LO-then-HI pair
    must be a value the counter really had during the two reads."""
    straddled = 0
    for carry_at in range(8, 20):           # cycle of the carry: each phase of a read pair
        rf = RegisterFile(rm)
        base = (1 << 32) - carry_at
        now = [0]
        pairs = []

        async def counter(ctx):
            while True:
                ctx.set(rf.cycles, base + now[0])
                await ctx.tick()
                now[0] += 1

        async def body(ctx):
            for _ in range(4):
                t0 = base + now[0] - 2      # slack: the counter process may lag a cycle
                lo, _ = await axi_read(ctx, rf.bus, rm.offset("CYCLES_LO"))
                hi, _ = await axi_read(ctx, rf.bus, rm.offset("CYCLES_HI"))
                pairs.append((t0, lo, hi, base + now[0] + 2))

        run(rf, body, counter)
        for t0, lo, hi, t1 in pairs:
            value = hi << 32 | lo
            assert t0 <= value <= t1, \
                f"torn read {value:#x} (LO {lo:#x}, HI {hi:#x}) not in [{t0:#x}, {t1:#x}]"
            # the carry happened after LO was read and before HI was
            straddled += lo >= 0xFFFF_FF00 and t1 - 2 > 1 << 32
    assert straddled, "no read pair straddled the carry: the test tests nothing"


def test_slverr_and_no_effect(rm):
    rf = RegisterFile(rm)
    rng = random.Random(3)

    async def body(ctx):
        # give every stored output a known nonzero value first
        for reg in rm.registers:
            if stored_mask(reg):
                data = rng.getrandbits(32) & stored_mask(reg)
                assert await axi_write(ctx, rf.bus, reg.offset, data) == AxiResp.OKAY
        snapshot = {n: ctx.get(s) for n, s in outputs(rf).items()}
        for addr in UNMAPPED:
            data, resp = await axi_read(ctx, rf.bus, addr)
            assert (data, resp) == (0, AxiResp.SLVERR), f"read {addr:#x}"
            assert await axi_write(ctx, rf.bus, addr, 0xFFFF_FFFF) == AxiResp.SLVERR, \
                f"write {addr:#x}"
        for reg in rm.registers:
            if not reg.writable:        # const, ro-only and counter registers
                assert await axi_write(ctx, rf.bus, reg.offset, 0xFFFF_FFFF) == \
                    AxiResp.SLVERR, reg.name
                if reg.kind == "reg" and reg.name != "STATUS":
                    data, resp = await axi_read(ctx, rf.bus, reg.offset)
                    assert (data, resp) == (reg.reset, AxiResp.OKAY), reg.name
        for _ in range(3):
            await ctx.tick()
        assert {n: ctx.get(s) for n, s in outputs(rf).items()} == snapshot
        # and the bus still works
        assert await axi_write(ctx, rf.bus, rm.offset("M"), 77) == AxiResp.OKAY
        assert await axi_read(ctx, rf.bus, rm.offset("M")) == (77, AxiResp.OKAY)

    run(rf, body)


def test_random_traffic_with_backpressure(rm):
    """Random reads and writes (mapped or not, any order, random strobes) with BREADY and
    RREADY held low for random numbers of cycles, against a model built from the map."""
    rf = RegisterFile(rm)
    rng = random.Random(11)
    rw_regs = [r for r in rm.registers if stored_mask(r)]
    model = {r.name: r.reset & stored_mask(r) for r in rw_regs}

    async def body(ctx):
        for _ in range(120):
            ready_prob = rng.choice([1.0, 0.5, 0.2])
            if rng.random() < 0.15:
                addr = rng.choice(UNMAPPED)
                reg = None
            else:
                reg = rng.choice(rw_regs + [rm.register("ID"), rm.register("CAPS_ARRAY")])
                addr = reg.offset
            if rng.random() < 0.5:
                data = rng.getrandbits(32)
                if reg is not None and reg.name == "CTRL":
                    data &= ~0b111
                strb = rng.randrange(16)
                order = rng.choice(["together", "aw_first", "w_first"])
                resp = await axi_write(ctx, rf.bus, addr, data, strb, order=order,
                                       gap=rng.randrange(3), rng=rng, ready_prob=ready_prob)
                if reg is None or not reg.writable:
                    assert resp == AxiResp.SLVERR
                else:
                    assert resp == AxiResp.OKAY
                    enable = sum(0xFF << 8 * i for i in range(4) if strb >> i & 1)
                    mask = stored_mask(reg) & enable
                    model[reg.name] = (model[reg.name] & ~mask) | (data & mask)
            else:
                got = await axi_read(ctx, rf.bus, addr, rng=rng, ready_prob=ready_prob)
                if reg is None:
                    assert got == (0, AxiResp.SLVERR)
                elif reg.name in model:
                    assert got == (model[reg.name], AxiResp.OKAY), reg.name
                else:
                    assert got == (reg.reset, AxiResp.OKAY), reg.name
            for _ in range(rng.randrange(3)):
                await ctx.tick()

    run(rf, body)


def test_concurrent_read_and_write(rm):
    """A reader and a writer on the bus at the same time (independent channels)."""
    rf = RegisterFile(rm)
    m_off, k_off = rm.offset("M"), rm.offset("K")
    reads = []

    async def reader(ctx):
        rng = random.Random(2)
        while True:
            reads.append(await axi_read(ctx, rf.bus, k_off, rng=rng, ready_prob=0.5))

    async def body(ctx):
        rng = random.Random(1)
        for i in range(1, 30):
            assert await axi_write(ctx, rf.bus, m_off, i, rng=rng, ready_prob=0.5,
                                   order=rng.choice(["together", "aw_first", "w_first"])) == 0
            assert ctx.get(rf.m) == i

    run(rf, body, reader)
    assert len(reads) > 10 and all(r == (0, AxiResp.OKAY) for r in reads)
