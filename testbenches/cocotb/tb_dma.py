"""cocotb bench for the AXI4 DMA pair (testbenches.dma_harness.DmaCopyHarness).

The bus is served only by cocotbext-axi's ``AxiRam`` (``AxiBus.from_prefix(dut, "m_axi")``),
with pause generators on its five channels for random backpressure/idle cycles and an
address range that answers SLVERR (or DECERR) for error injection.

One bench coroutine drives the command ports on the falling clock edge and samples every
handshake in the read-only phase after it (what the DUT and the RAM see at the next rising
edge). It checks, on every cycle: AR/AW bursts are INCR, full width, at most
``max_burst_beats`` long, inside one 4 KiB page, ID 0, cache 0b0011, prot 0; AR, AW and W
hold valid and payload stable until accepted. The tests check memory contents, the bursts
of each command (contiguous, in order, covering it exactly), ``last`` on the read stream,
the ``beat`` pulses, and the error/abort behaviour.

Environment: ``NPEGEN_DMA_MAX_BURST``, ``NPEGEN_DMA_MAX_OUTSTANDING``, ``NPEGEN_DMA_SEED``,
``NPEGEN_DMA_SCALE`` (fraction of the default amount of random copies; Icarus runs fewer).
"""

import os
import random
from collections import deque

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
from cocotbext.axi import AxiBus, AxiRam
from cocotbext.axi.constants import AxiResp

PAGE = 4096
MEM_SIZE = 1 << 20
SRC_BASE, DST_BASE = 0, MEM_SIZE // 2
MAX_BURST = int(os.environ.get("NPEGEN_DMA_MAX_BURST", "16"))
MAX_OUT = int(os.environ.get("NPEGEN_DMA_MAX_OUTSTANDING", "4"))
SEED = int(os.environ.get("NPEGEN_DMA_SEED", "1"))
SCALE = float(os.environ.get("NPEGEN_DMA_SCALE", "1"))

_STABLE = {
    "ar": ("araddr", "arlen", "arsize", "arburst", "arid", "arcache", "arprot", "arlock"),
    "aw": ("awaddr", "awlen", "awsize", "awburst", "awid", "awcache", "awprot", "awlock"),
    "w": ("wdata", "wstrb", "wlast"),
}


def _pauses(rng, p):
    while True:
        yield rng.random() < p


class Bench:
    def __init__(self, dut, *, pause=0.0, seed=SEED):
        self.dut = dut
        self.rng = random.Random(seed)
        self.bytes = len(dut.m_axi_rdata) // 8
        self.size = self.bytes.bit_length() - 1
        self.queues = {"rd": deque(), "wr": deque()}
        self.accepted = {"rd": [], "wr": []}
        self.last_accept = -10
        self.abort_req = {"rd": False, "wr": False}
        self.cross_abort = True        # the top-level policy: an error aborts the other half
        self.ar, self.aw = [], []       # (cycle, addr, beats)
        self.w_beats = []               # (cycle, strb)
        self.r_beats = []               # (cycle, resp, last)
        self.b_resps = []               # (cycle, resp)
        self.rd_out = []                # (data, last)
        self.rd_out_cycles = []
        self.pulses = {"rd": 0, "wr": 0}
        self.state = {}
        self.error_cycle = {"rd": None, "wr": None}
        self.cycle = 0
        self.bad = []                   # [lo, hi) byte ranges that answer with an error
        self.bad_resp = AxiResp.SLVERR
        self._pending = {}              # channel -> payload while valid & !ready
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst,
                          reset_active_level=True, size=MEM_SIZE)
        self._inject_errors()
        self.set_pause(pause)

    # ---- the RAM -----------------------------------------------------------------------
    def _inject_errors(self):
        ram, bench = self.ram, self

        def bad(addr, n):
            return any(addr < hi and lo < addr + n for lo, hi in bench.bad)

        async def read(address, length):
            if bad(address, length):
                raise IOError("injected read error")
            return ram.read(address % ram.size, length)

        async def write(address, data):
            if bad(address, len(data)):
                raise IOError("injected write error")
            ram.write(address % ram.size, data)

        ram.read_if._read = read
        ram.write_if._write = write
        # AxiRam answers SLVERR; rewrite it to DECERR when asked.
        for channel, field in ((ram.read_if.r_channel, "rresp"), (ram.write_if.b_channel, "bresp")):
            orig = channel.send

            async def send(obj, orig=orig, field=field):
                if getattr(obj, field) == AxiResp.SLVERR:
                    setattr(obj, field, bench.bad_resp)
                await orig(obj)
            channel.send = send

    def channels(self):
        r, w = self.ram.read_if, self.ram.write_if
        return [r.ar_channel, r.r_channel, w.aw_channel, w.w_channel, w.b_channel]

    def set_pause(self, p):
        for ch in self.channels():
            if p:
                ch.set_pause_generator(_pauses(random.Random(self.rng.random()), p))
            else:
                ch.clear_pause_generator()
                ch.pause = False    # clearing the generator leaves the last value standing

    # ---- clocking ----------------------------------------------------------------------
    async def reset(self):
        d = self.dut
        cocotb.start_soon(Clock(d.clk, 10, unit="ns").start())
        d.rst.value = 1
        for side in ("rd", "wr"):
            getattr(d, f"{side}_cmd_valid").value = 0
            getattr(d, f"{side}_cmd_addr").value = 0
            getattr(d, f"{side}_cmd_beats").value = 0
            getattr(d, f"{side}_abort").value = 0
        d.wr_strb.value = (1 << self.bytes) - 1
        d.rd_sink.value = 0
        for _ in range(4):
            await RisingEdge(d.clk)
        d.rst.value = 0
        cocotb.start_soon(self._run())
        for _ in range(2):
            await RisingEdge(d.clk)

    def _val(self, name):
        return int(getattr(self.dut, name).value)

    def _check_stable(self, ch, valid, ready):
        payload = tuple(self._val(f"m_axi_{s}") for s in _STABLE[ch])
        if ch in self._pending:
            assert valid, f"cycle {self.cycle}: {ch}valid fell before {ch}ready"
            assert payload == self._pending[ch], (
                f"cycle {self.cycle}: {ch} payload changed while waiting: "
                f"{self._pending[ch]} -> {payload}")
        if valid and not ready:
            self._pending[ch] = payload
        else:
            self._pending.pop(ch, None)
        return payload

    def _check_burst(self, ch, payload):
        addr, length, size, burst, id_, cache, prot, lock = payload
        beats = length + 1
        where = f"cycle {self.cycle}: {ch} burst addr {addr:#x} beats {beats}"
        assert beats <= MAX_BURST, f"{where}: longer than max_burst_beats={MAX_BURST}"
        assert addr % PAGE + beats * self.bytes <= PAGE, f"{where}: crosses a 4 KiB boundary"
        assert addr % self.bytes == 0, f"{where}: unaligned"
        assert size == self.size and burst == 1, f"{where}: size {size} burst {burst}"
        assert id_ == 0 and cache == 0b0011 and prot == 0 and lock == 0, (
            f"{where}: id {id_} cache {cache:#b} prot {prot} lock {lock}")
        return (self.cycle, addr, beats)

    async def _run(self):
        d = self.dut
        while True:
            await FallingEdge(d.clk)
            for side in ("rd", "wr"):
                q = self.queues[side]
                getattr(d, f"{side}_cmd_valid").value = int(bool(q))
                if q:
                    getattr(d, f"{side}_cmd_addr").value = q[0][0]
                    getattr(d, f"{side}_cmd_beats").value = q[0][1]
                getattr(d, f"{side}_abort").value = int(self.abort_req[side])
                self.abort_req[side] = False
            await ReadOnly()
            self.cycle += 1
            v = self._val
            for side in ("rd", "wr"):
                q = self.queues[side]
                if q and v(f"{side}_cmd_ready"):
                    self.accepted[side].append(q.popleft())
                    self.last_accept = self.cycle
                if v(f"{side}_beat"):
                    self.pulses[side] += 1
            for ch in ("ar", "aw"):
                valid, ready = v(f"m_axi_{ch}valid"), v(f"m_axi_{ch}ready")
                payload = self._check_stable(ch, valid, ready)
                if valid and ready:
                    getattr(self, ch).append(self._check_burst(ch, payload))
            wvalid, wready = v("m_axi_wvalid"), v("m_axi_wready")
            payload = self._check_stable("w", wvalid, wready)
            if wvalid and wready:
                self.w_beats.append((self.cycle, payload[1]))
            if v("m_axi_rvalid") and v("m_axi_rready"):
                self.r_beats.append((self.cycle, v("m_axi_rresp"), v("m_axi_rlast")))
            if v("m_axi_bvalid") and v("m_axi_bready"):
                self.b_resps.append((self.cycle, v("m_axi_bresp")))
            if v("rd_out_valid") and v("rd_out_ready"):
                self.rd_out.append((v("rd_out_data"), v("rd_out_last")))
                self.rd_out_cycles.append(self.cycle)
            state = {s: v(s) for s in ("rd_idle", "wr_idle", "rd_error", "wr_error")}
            for side, other in (("rd", "wr"), ("wr", "rd")):
                if state[f"{side}_error"] and not self.state.get(f"{side}_error"):
                    self.error_cycle[side] = self.cycle
                    if self.cross_abort:
                        # the top level's policy: withdraw the commands, abort the other half
                        self.abort_req[other] = True
                        self.queues["rd"].clear()
                        self.queues["wr"].clear()
            self.state = state

    # ---- helpers for tests ---------------------------------------------------------------
    async def abort_both(self):
        """Pulse both aborts and withdraw the queued commands (a soft reset); return once
        the DMAs have seen the pulse."""
        self.abort_req["rd"] = self.abort_req["wr"] = True
        self.queues["rd"].clear()
        self.queues["wr"].clear()
        for _ in range(3):
            await RisingEdge(self.dut.clk)

    async def wait_until(self, pred, limit, what):
        for _ in range(limit):
            if pred():
                return
            await RisingEdge(self.dut.clk)
        raise AssertionError(f"timeout after {limit} cycles waiting for {what}; "
                             f"state {self.state}, queued rd {len(self.queues['rd'])} "
                             f"wr {len(self.queues['wr'])}; bursts AR {len(self.ar)} of "
                             f"{sum(b[2] for b in self.ar)} beats, AW {len(self.aw)} of "
                             f"{sum(b[2] for b in self.aw)} beats; beats R {len(self.r_beats)} "
                             f"W {len(self.w_beats)}; B {len(self.b_resps)}; "
                             f"valid {[ch for ch in ('ar', 'aw', 'w', 'r', 'b') if self._val(f'm_axi_{ch}valid')]}")

    def idle(self):
        return (not self.queues["rd"] and not self.queues["wr"]
                and self.cycle >= self.last_accept + 2
                and self.state.get("rd_idle") and self.state.get("wr_idle"))

    async def wait_idle(self, limit, what="both DMAs idle"):
        await self.wait_until(self.idle, limit, what)

    async def quiet(self, cycles=30):
        """Both idle and no bus activity for ``cycles`` cycles."""
        counts = (len(self.ar), len(self.aw), len(self.w_beats), len(self.r_beats),
                  len(self.b_resps), len(self.rd_out))
        for _ in range(cycles):
            await RisingEdge(self.dut.clk)
            assert self.state["rd_idle"] and self.state["wr_idle"], f"not idle: {self.state}"
            for sig in ("arvalid", "awvalid", "wvalid", "rvalid", "bvalid"):
                assert not self._val(f"m_axi_{sig}"), f"{sig} high while idle"
        assert counts == (len(self.ar), len(self.aw), len(self.w_beats), len(self.r_beats),
                          len(self.b_resps), len(self.rd_out)), "bus traffic while idle"

    def random_addr(self, base, span, beats):
        """An aligned address in [base, base + span - beats*bytes); often near a page end."""
        nbytes = beats * self.bytes
        if self.rng.random() < 0.4:
            # straddle a 4 KiB boundary: start within one burst of a page end
            page = self.rng.randrange(base // PAGE + 1, (base + span - nbytes) // PAGE)
            back = self.rng.randrange(1, min(beats, MAX_BURST + 2) + 1) * self.bytes
            addr = max(base, page * PAGE - back)
        else:
            addr = self.rng.randrange(base, base + span - nbytes)
        return addr - addr % self.bytes


def check_bursts(bench, bursts, commands, what):
    """The bursts (in bus order) are exactly the commands split up, in order."""
    i = 0
    for addr, beats in commands:
        pos, end = addr, addr + beats * bench.bytes
        while pos < end:
            assert i < len(bursts), f"{what}: missing bursts for command ({addr:#x}, {beats})"
            _, baddr, bbeats = bursts[i]
            assert baddr == pos, f"{what}: burst at {baddr:#x}, expected {pos:#x}"
            assert pos + bbeats * bench.bytes <= end, f"{what}: burst runs past its command"
            # maximal: a burst stops only at max_burst, the page end or the command end
            stop = pos + bbeats * bench.bytes
            assert bbeats == MAX_BURST or stop % PAGE == 0 or stop == end, (
                f"{what}: burst of {bbeats} at {baddr:#x} is needlessly short")
            pos = stop
            i += 1
    assert i == len(bursts), f"{what}: {len(bursts) - i} extra bursts"


async def copy_batch(bench, jobs, *, strb=None, limit=None, sticky_error=False):
    """Queue ``jobs`` [(src, dst, beats)] back to back on both halves; check the result."""
    B = bench.bytes
    ram = bench.ram
    strb = (1 << B) - 1 if strb is None else strb
    bench.dut.wr_strb.value = strb
    before = ram.read(DST_BASE, MEM_SIZE - DST_BASE)
    src_data = [ram.read(s, n * B) for s, _, n in jobs]
    marks = (len(bench.ar), len(bench.aw), len(bench.rd_out), len(bench.w_beats),
             dict(bench.pulses))
    for s, dst, n in jobs:
        bench.queues["rd"].append((s, n))
        bench.queues["wr"].append((dst, n))
    total = sum(n for _, _, n in jobs)
    t0 = bench.cycle
    await bench.wait_idle(limit or 2000 + 40 * total, f"copy of {total} beats")
    bench.dut._log.info(f"copied {[n for _, _, n in jobs]} beats in {bench.cycle - t0} cycles")
    if not sticky_error:
        assert not bench.state["rd_error"] and not bench.state["wr_error"], bench.state

    expect = bytearray(before)
    for (s, dst, n), data in zip(jobs, src_data):
        off = dst - DST_BASE
        for k in range(n * B):
            if strb >> (k % B) & 1:
                expect[off + k] = data[k]
    got = ram.read(DST_BASE, MEM_SIZE - DST_BASE)
    if got != bytes(expect):
        bad = next(k for k in range(len(got)) if got[k] != expect[k])
        raise AssertionError(f"memory differs first at {DST_BASE + bad:#x}: "
                             f"{got[bad]:#04x}, expected {expect[bad]:#04x}; jobs {jobs}")
    check_bursts(bench, bench.ar[marks[0]:], [(s, n) for s, _, n in jobs if n], "AR")
    check_bursts(bench, bench.aw[marks[1]:], [(d, n) for _, d, n in jobs if n], "AW")
    out = bench.rd_out[marks[2]:]
    assert len(out) == total, f"{len(out)} read beats delivered, expected {total}"
    ends, acc = set(), 0
    for _, _, n in jobs:
        acc += n
        if n:
            ends.add(acc - 1)
    lasts = {k for k, (_, last) in enumerate(out) if last}
    assert lasts == ends, f"last on beats {sorted(lasts)}, expected {sorted(ends)}"
    assert len(bench.w_beats) - marks[3] == total
    for side in ("rd", "wr"):
        assert bench.pulses[side] - marks[4][side] == total, f"{side}_beat pulses"


def random_jobs(bench, count, max_beats=2000):
    """Non-overlapping copies (sources in the low half, destinations in the high half)."""
    jobs = []
    span = (MEM_SIZE // 2) // count
    for k in range(count):
        rng = bench.rng
        if rng.random() < 0.6:
            n = rng.randint(1, max_beats)
        else:
            n = rng.choice([1, 2, 3, max(1, MAX_BURST - 1), MAX_BURST, MAX_BURST + 1,
                            rng.randint(1, 64)])
        n = min(n, span // bench.bytes - 1)
        src = bench.random_addr(SRC_BASE + k * span, span, n)
        dst = bench.random_addr(DST_BASE + k * span, span, n)
        jobs.append((src, dst, n))
    return jobs


async def start(dut, **kw):
    bench = Bench(dut, **kw)
    bench.ram.write(0, random.Random(SEED).randbytes(MEM_SIZE))
    await bench.reset()
    return bench


@cocotb.test()
async def copies(dut):
    """Random copies, single and back to back, with and without backpressure; strobes;
    zero-length commands."""
    bench = await start(dut)
    rng = bench.rng
    batches = max(2, round(6 * SCALE))
    # straddling copies, one at a time, no backpressure
    for _ in range(batches):
        await copy_batch(bench, random_jobs(bench, 1))
    # back to back, no backpressure
    await copy_batch(bench, random_jobs(bench, 4, max_beats=300))
    # zero-length commands between others
    jobs = random_jobs(bench, 3, max_beats=40)
    jobs.insert(1, (jobs[0][0], jobs[0][1], 0))
    await copy_batch(bench, jobs)
    # a strobe pattern
    await copy_batch(bench, random_jobs(bench, 2, max_beats=100),
                     strb=rng.randrange(1, 1 << bench.bytes))
    # random pauses on every channel
    for p in (0.3, 0.7):
        bench.set_pause(p)
        for _ in range(max(1, batches // 2)):
            await copy_batch(bench, random_jobs(bench, rng.randint(1, 3), max_beats=800))
    bench.set_pause(0)
    await bench.quiet()
    dut._log.info(f"copies: {len(bench.ar)} AR and {len(bench.aw)} AW bursts checked, "
                  f"{len(bench.rd_out)} beats, {bench.cycle} cycles")


async def failing_copy(bench, side, *, resp):
    """A copy whose source (rd) or destination (wr) runs into an error range."""
    B = bench.bytes
    bench.bad_resp = resp
    n = 600
    src = bench.random_addr(SRC_BASE, MEM_SIZE // 4, n)
    dst = bench.random_addr(DST_BASE, MEM_SIZE // 4, n)
    mid = (src if side == "rd" else dst) + bench.rng.randrange(n // 4, n // 2) * B
    bench.bad = [(mid, mid + 64 * B)]
    marks = {"ar": len(bench.ar), "aw": len(bench.aw), "w": len(bench.w_beats),
             "r": len(bench.r_beats)}
    # more commands queued behind it (the bench withdraws them when the error rises)
    for k in range(3):
        bench.queues["rd"].append((src, n) if k == 0 else (src + k * 64 * B, 32))
        bench.queues["wr"].append((dst, n) if k == 0 else (dst + k * 64 * B, 32))
    await bench.wait_until(lambda: bench.state.get(f"{side}_error"), 20 * n,
                           f"{side}_error after an error response")
    ec = bench.error_cycle[side]
    # the DMA drains; the other half is aborted by the bench's policy
    await bench.wait_idle(20 * n, "idle after the error")
    assert bench.state[f"{side}_error"], "error must be sticky"
    # after the error at most one address (already in the AR/AW register) went out
    addr_ch = "ar" if side == "rd" else "aw"
    late = [b for b in getattr(bench, addr_ch) if b[0] > ec + 1]
    assert len(late) <= 1, f"{len(late)} {addr_ch} bursts issued after the error"
    # every addressed burst completed: R beats = AR beats, W beats = AW beats, B = AW
    assert sum(b[2] for b in bench.ar) == len(bench.r_beats)
    assert sum(b[2] for b in bench.aw) == len(bench.w_beats)
    assert len(bench.aw) == len(bench.b_resps)
    if side == "wr":
        # at most the W beat already on offer completes with its strobes, then WSTRB=0
        written = [c for c, s in bench.w_beats[marks["w"]:] if c > ec + 1 and s]
        assert len(written) <= 1, f"{len(written)} W beats with strobes after the error"
    else:
        late_data = [c for c in bench.rd_out_cycles if c > ec + 1]
        assert not late_data, f"{len(late_data)} read beats delivered after the error"
    bench.bad = []
    await bench.quiet()


@cocotb.test()
async def errors(dut):
    """SLVERR and DECERR on reads and writes: error sticky, drain, idle, next copy works,
    abort clears the error."""
    bench = await start(dut, seed=SEED + 1)
    for pause in (0.0, 0.4):
        bench.set_pause(pause)
        for side, resp in (("rd", AxiResp.SLVERR), ("wr", AxiResp.DECERR),
                           ("rd", AxiResp.DECERR), ("wr", AxiResp.SLVERR)):
            await failing_copy(bench, side, resp=resp)
            # the sticky error does not block the next copy
            await copy_batch(bench, random_jobs(bench, 1, max_beats=300), sticky_error=True)
            assert bench.state[f"{side}_error"], "error must be sticky"
            await bench.abort_both()
            await bench.wait_until(lambda: not bench.state["rd_error"]
                                   and not bench.state["wr_error"], 10, "abort clears error")
            await copy_batch(bench, random_jobs(bench, 2, max_beats=300))
    bench.set_pause(0)
    await bench.quiet()


@cocotb.test()
async def abort(dut):
    """Abort in the middle of long copies (and when idle): idle, bus quiet, next copy works."""
    bench = await start(dut, seed=SEED + 2)
    rng = bench.rng
    for pause in (0.0, 0.5, 0.0):
        bench.set_pause(pause)
        n = 2000
        src = bench.random_addr(SRC_BASE, MEM_SIZE // 4, n)
        dst = bench.random_addr(DST_BASE, MEM_SIZE // 4, n)
        bench.queues["rd"].append((src, n))
        bench.queues["wr"].append((dst, n))
        bench.queues["rd"].append((src + n * bench.bytes, 100))
        bench.queues["wr"].append((dst + n * bench.bytes, 100))
        for _ in range(rng.randrange(20, 600)):
            await RisingEdge(dut.clk)
        assert not bench.state["rd_idle"], "abort should hit a running copy"
        await bench.abort_both()
        await bench.wait_idle(2000 + 40 * MAX_BURST * MAX_OUT, "idle after abort")
        assert not bench.state["rd_error"] and not bench.state["wr_error"]
        assert sum(b[2] for b in bench.ar) == len(bench.r_beats)
        assert sum(b[2] for b in bench.aw) == len(bench.w_beats)
        assert len(bench.aw) == len(bench.b_resps)
        await bench.quiet()
        await copy_batch(bench, random_jobs(bench, 2, max_beats=500))
    # abort while idle is harmless
    await bench.abort_both()
    await bench.wait_idle(20)
    await copy_batch(bench, random_jobs(bench, 1, max_beats=100))
    bench.set_pause(0)
    await bench.quiet()


async def _measure(bench, commands, *, sink):
    """Beats per cycle of the read stream, from the first AR to the last delivered beat."""
    bench.dut.rd_sink.value = int(sink)
    r0, ar0 = len(bench.rd_out), len(bench.ar)
    for cmd in commands:
        bench.queues["rd"].append(cmd)
        if not sink:
            bench.queues["wr"].append((cmd[0] + DST_BASE, cmd[1]))
    total = sum(n for _, n in commands)
    t0 = bench.cycle
    await bench.wait_idle(10 * total + 1000, "measurement")
    first_ar = bench.ar[ar0][0]
    # cycle of the last beat: the bench records rd_out in order; find its cycle via R beats
    last_r = bench.r_beats[-1][0]
    assert len(bench.rd_out) - r0 == total
    bench.dut.rd_sink.value = 0
    return total, first_ar - t0, last_r - first_ar + 1


@cocotb.test()
async def throughput(dut):
    """Read stream rate without backpressure (printed, not asserted)."""
    bench = await start(dut, seed=SEED + 3)
    B = bench.bytes
    for name, cmds, sink in (
        ("one 4000-beat read", [(0, 4000)], True),
        ("16 back-to-back 256-beat reads", [(k * 256 * B, 256) for k in range(16)], True),
        ("64 back-to-back 16-beat reads", [(k * 16 * B, 16) for k in range(64)], True),
        ("one 4000-beat copy", [(0, 4000)], False),
    ):
        total, lead, span = await _measure(bench, cmds, sink=sink)
        dut._log.info(f"THROUGHPUT {name} (max_burst {MAX_BURST}, outstanding {MAX_OUT}): "
                      f"{total} beats in {span} cycles = {total / span:.3f} beats/cycle "
                      f"(first AR {lead} cycles after the command)")
    # the RAM model alone: gaps between R bursts versus inside them
    gaps = [b[0] - a[0] - 1 for a, b in zip(bench.r_beats, bench.r_beats[1:])]
    lasts = [i for i, r in enumerate(bench.r_beats[:-1]) if r[2]]
    between = [gaps[i] for i in lasts]
    inside = [g for i, g in enumerate(gaps) if i not in set(lasts)]
    dut._log.info(f"THROUGHPUT R idle cycles: inside bursts {sum(inside)} over {len(inside)} "
                  f"beat pairs; between bursts {sum(between)} over {len(between)} bursts")
