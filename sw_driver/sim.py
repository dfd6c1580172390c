"""The driver against the RTL in a cocotb simulation (Verilator or Icarus).

:class:`SimTransport` starts the simulation of a design (built once per design and
simulator, then reused) and talks to it over a local connection. In the simulator,
``testbenches/cocotb/tb_server.py`` serves the requests from a thread started with cocotb's
``bridge``; each register access is a ``resume``-wrapped call of cocotbext-axi's
AxiLiteMaster, so it takes simulated bus cycles, and memory is cocotbext-axi's AxiRam,
written directly while the simulation waits. The driver code itself is the ordinary
synchronous code that also runs against the model and on a board::

    with Device.open("verilator", "tiny") as dev:
        result = dev.matmul(a, b, fmt_a="posit8_0", out_fmt="posit16_1")
"""

from __future__ import annotations

import itertools
import os
import secrets
import threading
from multiprocessing.connection import Listener

from sw_driver.transport import BumpAllocator, Transport, TransportError

__all__ = ["SimTransport", "MEM_BASE", "MEM_SIZE"]

_RUNS = itertools.count()

MEM_BASE = 0x0010_0000
MEM_SIZE = 16 << 20


class SimTransport(Transport):
    """The RTL of ``config`` (a shipped config name) in ``simulator``.

    Parameters
    ----------
    config : str
    simulator : {"verilator", "icarus"}
    start_timeout : float
        Seconds to wait for the simulation to come up (a first Verilator build of a large
        design takes minutes: it is included).
    """

    def __init__(self, config: str, *, simulator: str = "verilator", start_timeout: float = 1800,
                 tag: str = "server"):
        from testbenches.coproc_runner import design
        from testbenches.sim import build, run_cocotb

        if simulator not in ("verilator", "icarus"):
            raise ValueError(f"simulator must be 'verilator' or 'icarus', not {simulator!r}")
        self.name = simulator
        top, out = design(config)
        self.regmap = top.regmap
        self.allocator = BumpAllocator(MEM_BASE, MEM_SIZE)
        built = build(simulator, [out / "npegen_top.v"], "npegen_top")
        # A directory per transport: simulations may run side by side (pytest-xdist).
        work = built.build_dir / f"run-{tag}-{os.getpid()}-{next(_RUNS)}"
        work.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(16)
        listener = Listener(("127.0.0.1", 0), authkey=key)
        listener._listener._socket.settimeout(start_timeout)
        host, port = listener.address
        self._failure = None

        def simulate():
            try:
                run_cocotb(built, "tb_server", work_dir=work, env={
                    "NPEGEN_SERVER": f"{host}:{port}", "NPEGEN_SERVER_KEY": key.hex(),
                    "NPEGEN_REGMAP": str(out / "regmap.json")})
            except Exception as exc:     # reported by the next request or by close()
                self._failure = exc

        self._thread = threading.Thread(target=simulate, name=f"npegen-{simulator}", daemon=True)
        self._thread.start()
        try:
            self._conn = listener.accept()
        except OSError as exc:
            raise TransportError(f"the {simulator} simulation of {config} did not connect: "
                                 f"{self._failure or exc}") from None
        finally:
            listener.close()

    def _call(self, op, *args):
        try:
            self._conn.send((op, args))
            status, value = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise TransportError(f"the simulation ended: {self._failure or exc}") from None
        if status == "error":
            raise TransportError(f"in the simulation: {value}")
        return value

    def read32(self, offset):
        return self._call("read32", offset)

    def write32(self, offset, value):
        self._call("write32", offset, value)

    def alloc(self, nbytes, align=64):
        return self.allocator.alloc(nbytes, align)

    def free_all(self):
        self.allocator.reset()

    def write_mem(self, addr, data):
        self._call("write_mem", addr, bytes(data))

    def read_mem(self, addr, nbytes):
        return self._call("read_mem", addr, nbytes)

    def wait_irq(self, timeout: float) -> bool:
        """Let the simulation run until ``irq`` is high (or ``timeout`` wall seconds)."""
        return self._call("wait_irq", timeout)

    def close(self):
        conn = getattr(self, "_conn", None)
        if conn is not None:
            try:
                conn.send(("close", ()))
            except OSError:
                pass
            conn.close()
            self._conn = None
            self._thread.join(timeout=120)
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise TransportError(f"the simulation failed: {failure}")
