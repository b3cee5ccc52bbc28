"""Actions on the wire. The child turns whatever `act()` returned into the wire format (an int,
or float64s of the space's shape), naming type and shape mistakes; the evaluator checks the
values against the space (range, bounds, NaN) and names those mistakes. The evaluator's check is
the one that counts, since the child's process is under the policy's control: a frame the
child's own conversion cannot have produced is a protocol violation (`WireError`)."""
from __future__ import annotations

import struct
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from llmrl.sandbox.protocol import ACTION_BOX, ACTION_INT

TOLERANCE = 1e-6  # bounds are checked with this slack (float32 round-off of a clipped action)


class InvalidAction(Exception):
    """The policy returned something the environment cannot take; the message says what and why."""


class WireError(Exception):
    """A frame that does not follow the protocol."""


def space_spec(space: gym.Space) -> dict[str, Any]:
    """A plain description of an action space, enough to rebuild it in the sandbox."""
    if isinstance(space, gym.spaces.Discrete):
        return {"kind": "discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.Box):
        return {"kind": "box", "low": space.low.tolist(), "high": space.high.tolist(), "shape": list(space.shape),
                "dtype": space.dtype.str}
    raise TypeError(f"the sandbox supports Discrete and Box action spaces, not {space}")


def build_space(spec: dict[str, Any]) -> gym.Space:
    if spec["kind"] == "discrete":
        return gym.spaces.Discrete(spec["n"], start=spec["start"])
    dtype = np.dtype(spec["dtype"])
    return gym.spaces.Box(np.asarray(spec["low"], dtype=dtype), np.asarray(spec["high"], dtype=dtype),
                          shape=tuple(spec["shape"]), dtype=dtype)


def _int_range(space: gym.spaces.Discrete) -> str:
    return f"[{space.start}, {space.start + space.n - 1}]"


def encoder(space: gym.Space) -> Callable[[Any], tuple[int, bytes]]:
    """In the child: act()'s return value -> (frame kind, payload), or InvalidAction."""
    if isinstance(space, gym.spaces.Discrete):
        pack = struct.Struct("<q").pack

        def encode_int(action: Any) -> tuple[int, bytes]:
            if type(action) is int:
                return ACTION_INT, pack(action)
            value = action
            if isinstance(value, np.ndarray) and value.size == 1 and np.issubdtype(value.dtype, np.integer):
                value = value.reshape(()).item()
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise InvalidAction(f"act() returned {action!r} of type {type(action).__name__}; expected an int in "
                                    f"{_int_range(space)} ({space})")
            if not -2**63 <= int(value) < 2**63:
                raise InvalidAction(f"act() returned {int(value)}, outside {_int_range(space)} ({space})")
            return ACTION_INT, pack(int(value))

        return encode_int
    if isinstance(space, gym.spaces.Box):
        shape, size = space.shape, int(np.prod(space.shape))
        f64 = np.float64

        def encode_box(action: Any) -> tuple[int, bytes]:
            if type(action) is np.ndarray and action.shape == shape and action.dtype == f64:
                return ACTION_BOX, action.tobytes()
            try:
                arr = np.asarray(action, dtype=f64)
            except (TypeError, ValueError):
                raise InvalidAction(f"act() returned {type(action).__name__} {str(action)[:80]}, not numbers; expected a "
                                    f"numpy array of shape {shape} in [{space.low.min():g}, {space.high.max():g}] "
                                    f"({space})") from None
            if arr.shape != shape:
                if arr.size != size or size == 0:
                    raise InvalidAction(f"act() returned shape {arr.shape}; expected shape {shape} ({space})")
                arr = arr.reshape(shape)
            return ACTION_BOX, arr.tobytes()

        return encode_box
    raise TypeError(f"the sandbox supports Discrete and Box action spaces, not {space}")


def decoder(space: gym.Space) -> Callable[[int, bytes], Any]:
    """In the evaluator: (frame kind, payload) -> the action the env gets, or InvalidAction
    (the policy's mistake, described) or WireError (a frame the child cannot have produced)."""
    if isinstance(space, gym.spaces.Discrete):
        lo, hi = int(space.start), int(space.start + space.n)
        unpack = struct.Struct("<q").unpack

        def decode_int(kind: int, payload: bytes) -> int:
            if kind != ACTION_INT or len(payload) != 8:
                raise WireError(f"expected an integer action frame, got kind {kind} of {len(payload)} bytes")
            value = unpack(payload)[0]
            if not lo <= value < hi:
                raise InvalidAction(f"act() returned {value}, outside {_int_range(space)} ({space})")
            return value

        return decode_int
    shape, nbytes, dtype = space.shape, int(np.prod(space.shape)) * 8, space.dtype
    low, high = space.low.astype(np.float64) - TOLERANCE, space.high.astype(np.float64) + TOLERANCE

    def decode_box(kind: int, payload: bytes) -> np.ndarray:
        if kind != ACTION_BOX or len(payload) != nbytes:
            raise WireError(f"expected a float action frame of {nbytes} bytes, got kind {kind} of {len(payload)} bytes")
        arr = np.frombuffer(payload, dtype=np.float64).reshape(shape)
        if not ((arr >= low) & (arr <= high)).all():  # NaN fails both comparisons
            if not np.isfinite(arr).all():
                raise InvalidAction(f"act() returned non-finite values (NaN or inf) {arr.tolist()}; expected finite "
                                    f"numbers in [{space.low.min():g}, {space.high.max():g}] ({space})")
            raise InvalidAction(f"act() returned {np.round(arr, 4).tolist()}, outside the bounds low={space.low.tolist()} "
                                f"high={space.high.tolist()}; clip the action ({space})")
        return arr.astype(dtype)

    return decode_box
