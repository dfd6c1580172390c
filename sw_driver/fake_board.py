"""A fake board for testing :class:`sw_driver.mmio.MmioTransport` without hardware: files
stand in for the register window and the DMA buffer, and the NumPy model of the
co-processor serves them.

The driver's stores land in the mapped register file; a thread polls it, hands every
changed register to :class:`sw_driver.model.ModelTransport` as a register write (so a
write of CTRL.START runs the job on the buffer's contents), and writes the model's
registers, including STATUS and the counters, back into the file. Only what real
hardware would do differently is approximated: reads of a counter's HI half do not latch.

Use :meth:`FakeBoard.transport`: its register writes wait until the board has served them,
as a store to a strongly ordered (Device-nGnRnE, what Linux maps ``/dev/mem`` and UIO
with) register completes before the next access. Over a plain
:class:`~sw_driver.mmio.MmioTransport` of the same files a read right
after a write sees the file's word, which is the value written until the board serves
it: the STATUS a driver has just written DONE=1 to (to clear it) then reads as DONE, and
a job just started looks finished.
"""

from __future__ import annotations

import mmap
import os
import threading
import time
from pathlib import Path

from sw_driver.mmio import MmioTransport
from sw_driver.model import ModelTransport

__all__ = ["FakeBoard"]

_MARK = 1 << 31         # an unused STATUS bit (see _publish)


class FakeBoard:
    """Register and buffer files in ``directory`` served by the model of ``config``.

    ``poll_interval``: seconds between the serving thread's looks at the register file
    (a test makes it long to show what a driver sees while a write is not yet served).
    """

    def __init__(self, config, directory, *, buffer_size: int = 1 << 20,
                 buffer_phys: int = 0x3000_0000, poll_interval: float = 0.0005):
        self.model = ModelTransport(config, mem_size=buffer_size, mem_base=buffer_phys)
        self.regmap = self.model.regmap
        d = Path(directory)
        self.regs_path, self.buf_path = d / "regs", d / "buffer"
        self.regs_path.write_bytes(bytes(4096))
        self.buf_path.write_bytes(bytes(buffer_size))
        self.buffer_phys, self.buffer_size = buffer_phys, buffer_size
        fd = os.open(self.regs_path, os.O_RDWR)
        self._regs = mmap.mmap(fd, 4096)
        os.close(fd)
        fd = os.open(self.buf_path, os.O_RDWR)
        self._buf = mmap.mmap(fd, buffer_size)
        os.close(fd)
        self._shadow = {}
        self._publish()
        self._poll_interval = poll_interval
        # held while a change is taken from the file, served and published, so that
        # settle() never sees a half-published state
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _transport_args(self) -> dict:
        # (private: a plain MmioTransport of them does not wait for the board, see the
        # module's docstring; transport() is the way in)
        return dict(regs=(str(self.regs_path), 0),
                    buffer=(str(self.buf_path), 0, self.buffer_size),
                    buffer_phys=self.buffer_phys)

    def transport(self) -> MmioTransport:
        """An :class:`~sw_driver.mmio.MmioTransport` of this board whose register writes
        return once the board has served them."""
        return _SettledMmioTransport(self, **self._transport_args())

    def _pending(self):
        return [reg for reg in self.regmap.registers
                if reg.writable and self._word(reg.offset) != self._shadow.get(reg.offset)]

    def settle(self, timeout: float = 10.0):
        """Wait until every register write in the file has been served (the model has
        taken it and the file shows the model's registers again)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if not self._pending():
                    return
            if not self._thread.is_alive():
                raise RuntimeError("the fake board's serving thread has stopped")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the fake board did not serve a register write in {timeout} s")
            time.sleep(self._poll_interval / 4)

    def _word(self, offset, value=None):
        if value is None:
            return int.from_bytes(self._regs[offset:offset + 4], "little")
        self._regs[offset:offset + 4] = int(value & 0xFFFFFFFF).to_bytes(4, "little")

    def _publish(self):
        """Write every register as the model reads it into the file."""
        for reg in self.regmap.registers:
            value = self.model.read32(reg.offset)
            if reg.kind == "counter_lo":
                self._word(reg.offset + 4, self.model.counters[reg.counter] >> 32)
            elif reg.kind == "counter_hi":
                continue
            if reg.name == "STATUS":
                # A w1c write of DONE=1 over a DONE=1 would leave the word unchanged and
                # go unseen: publish STATUS with an unused bit set, which any write clears.
                value |= _MARK
            self._word(reg.offset, value)
            self._shadow[reg.offset] = self._word(reg.offset)

    def _serve(self):
        while not self._stop.is_set():
            with self._lock:
                changed = [(reg, self._word(reg.offset)) for reg in self._pending()]
                if changed:
                    self.model.mem[:] = self._buf[:]          # the buffer as the driver left it
                    # CTRL last: START acts on the job registers written with it.
                    for reg, value in sorted(changed, key=lambda rv: rv[0].name == "CTRL"):
                        if reg.name == "STATUS":
                            value &= ~_MARK
                        self.model.write32(reg.offset, value)
                    self._buf[:] = bytes(self.model.mem)
                    self._publish()
            time.sleep(self._poll_interval)

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self._regs.close()
        self._buf.close()


class _SettledMmioTransport(MmioTransport):
    """MmioTransport whose register writes wait for the fake board to serve them."""

    def __init__(self, board: FakeBoard, **kwargs):
        super().__init__(**kwargs)
        self._board = board

    def write32(self, offset, value):
        super().write32(offset, value)
        self._board.settle()
