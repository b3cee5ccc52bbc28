"""The wire between the trusted evaluator (which owns the environment, the reward and the score)
and the sandboxed child (which owns only the policy): length-prefixed frames over two pipes.

The evaluator never unpickles what the child sends: every frame from the child is either a
fixed-size binary action, checked against the action space again on arrival, or a short JSON
document, size-capped. The other direction (evaluator -> child) may carry pickles, since the child
trusts the evaluator and not the other way round.

Frame: 4-byte little-endian payload length, 1 byte kind, payload."""
from __future__ import annotations

import errno
import json
import os
import pickle
import select
import struct
import time
from typing import Any

import numpy as np

HEADER = struct.Struct("<IB")
# evaluator -> child
JOB = ord("J")          # pickled dict: what to run
OBS_ARRAY = ord("O")    # raw bytes of an ndarray whose dtype/shape the job announced
OBS_PICKLE = ord("P")   # any other observation, pickled
# child -> evaluator
READY = ord("R")        # JSON: the policy is built (and what hardening could not apply)
ACTION_INT = ord("D")   # int64
ACTION_BOX = ord("B")   # float64 array, in the action space's shape
ERROR = ord("X")        # JSON {kind, message, traceback}
SUMMARY = ord("S")      # JSON string: one Feedback summary
EPISODE = ord("N")      # evaluator -> child, empty: the next observation starts a new episode
MAX_CHILD_FRAME = 1 << 20  # nothing the child may send is larger (JSON is capped again on arrival)


class ChannelClosed(Exception):
    """The other end went away (or sent a frame that breaks the protocol)."""


class FrameTooLarge(ChannelClosed):
    """A frame longer than the reader allows: a protocol violation, not a death."""


class ChannelTimeout(Exception):
    pass


class Channel:
    """One direction's reader and the other's writer. `deadline` arguments are absolute
    `time.monotonic()` values; None waits for ever (the child's side: it is killed from
    outside when it is too slow, never the other way round).

    `spin_s` > 0 (non-blocking read descriptor): poll the pipe without sleeping for up to that
    long before blocking. Worth it only when the two sides run on different cores: waking a
    sleeping process on another core costs tens of microseconds on virtual machines, more than
    a MuJoCo step, while spinning hands a frame over in about a microsecond."""

    def __init__(self, read_fd: int, write_fd: int, max_frame: int | None = None, spin_s: float = 0.0) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd
        self.spin_s = spin_s
        self.max_frame = max_frame
        self._buf = bytearray()
        self._poll = select.poll()
        self._poll.register(read_fd, select.POLLIN | select.POLLHUP | select.POLLERR)

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass

    # ---- sending ---------------------------------------------------------------------------
    def send(self, kind: int, payload: bytes, deadline: float | None = None) -> None:
        data = HEADER.pack(len(payload), kind) + payload
        try:
            n = os.write(self.write_fd, data)  # the common case: the whole frame at once
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as exc:
            raise ChannelClosed(f"the other side closed the channel ({exc})") from None
        if n == len(data):
            return
        data = memoryview(data)[n:]
        while data:
            try:
                n = os.write(self.write_fd, data)
            except BlockingIOError:
                self._wait_writable(deadline)
                continue
            except (BrokenPipeError, OSError) as exc:
                if getattr(exc, "errno", None) == errno.EINTR:
                    continue
                raise ChannelClosed(f"the other side closed the channel ({exc})") from None
            data = data[n:]

    def _wait_writable(self, deadline: float | None) -> None:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        _, ready, _ = select.select([], [self.write_fd], [], timeout)
        if not ready:
            raise ChannelTimeout("write")

    def send_json(self, kind: int, value: Any, deadline: float | None = None) -> None:
        self.send(kind, json.dumps(value, default=str).encode(), deadline)

    def send_pickle(self, kind: int, value: Any, deadline: float | None = None) -> None:
        self.send(kind, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), deadline)

    # ---- receiving -------------------------------------------------------------------------
    def recv(self, deadline: float | None = None) -> tuple[int, bytes]:
        """The next frame (kind, payload). Raises ChannelTimeout past `deadline` and
        ChannelClosed at end of file or on a frame longer than allowed."""
        buf = self._buf
        while True:
            if len(buf) >= HEADER.size:
                length, kind = HEADER.unpack_from(buf)
                if self.max_frame is not None and length > self.max_frame:
                    raise FrameTooLarge(f"a frame of {length} bytes (more than {self.max_frame} allowed)")
                end = HEADER.size + length
                if len(buf) >= end:
                    payload = bytes(buf[HEADER.size:end])
                    del buf[:end]
                    return kind, payload
            chunk = self._spin() if self.spin_s else None
            if chunk is None:
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._poll.poll(remaining * 1000.0):
                        raise ChannelTimeout("read")
                elif self.spin_s:  # a non-blocking descriptor: sleep until there is something
                    self._poll.poll()
                try:
                    chunk = os.read(self.read_fd, 1 << 16)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:
                    raise ChannelClosed(f"reading failed ({exc})") from None
            if not chunk:
                raise ChannelClosed("end of file")
            buf += chunk

    def _spin(self) -> bytes | None:
        end = time.perf_counter() + self.spin_s
        poll, clock = self._poll.poll, time.perf_counter
        while not poll(0):  # a zero-timeout poll costs a third of a failing read (no exception)
            if clock() > end:
                return None
        try:
            return os.read(self.read_fd, 1 << 16)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            raise ChannelClosed(f"reading failed ({exc})") from None


class ObservationCodec:
    """Observations as raw bytes when they are arrays of one dtype and shape (the common case,
    no pickling on the hot path), pickled otherwise. The child gets a writable copy."""

    def __init__(self) -> None:
        self.dtype: np.dtype | None = None
        self.shape: tuple[int, ...] | None = None

    def announce(self, obs: Any) -> dict[str, Any] | None:
        """What the child needs to decode raw frames, from the first observation."""
        if isinstance(obs, np.ndarray) and obs.dtype != object:
            self.dtype, self.shape = obs.dtype, obs.shape
            return {"dtype": obs.dtype.str, "shape": list(obs.shape)}
        return None

    def encode(self, obs: Any) -> tuple[int, bytes]:
        if self.dtype is not None and type(obs) is np.ndarray and obs.dtype == self.dtype and obs.shape == self.shape:
            return OBS_ARRAY, obs.tobytes()
        return OBS_PICKLE, pickle.dumps(obs, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def decoder(meta: dict[str, Any] | None):
        dtype = np.dtype(meta["dtype"]) if meta else None
        shape = tuple(meta["shape"]) if meta else None

        def decode(kind: int, payload: bytes) -> Any:
            if kind == OBS_ARRAY and dtype is not None:
                return np.frombuffer(bytearray(payload), dtype=dtype).reshape(shape)
            return pickle.loads(payload)

        return decode
