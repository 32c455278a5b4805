"""Reader for dlib's binary serialization primitives (dlib/serialize.h, dlib/dnn/tensor.h).

Only what a dlib net file needs: integers, floats, bools, strings and tensors. Every read checks
its bounds and raises :class:`~facestack.vision.errors.ModelPackError` naming the byte offset where the input
stopped making sense, so a truncated or foreign file fails loudly instead of producing garbage.

Encodings:

* integer: one control byte (bit 7 = negative, bits 0-3 = number of magnitude bytes, bits 4-6
  zero) followed by the magnitude, little-endian;
* float: two integers, the mantissa (int64) then the exponent (int16); value = m * 2**e, with
  the exponents 32000/32001/32002 standing for +inf/-inf/nan;
* bool: the ASCII byte ``'1'`` or ``'0'``;
* string: an integer length then that many bytes;
* tensor (version 2): an integer version, then n, k, nr, nc, then n*k*nr*nc little-endian float32;
  version 1 stores every value as a serialized float instead.
"""
from __future__ import annotations

import math

import numpy as np

from facestack.vision.errors import ModelPackError

__all__ = ["DlibReader"]

_INF_EXP = 32000
_NINF_EXP = 32001
_NAN_EXP = 32002
_MAX_TENSOR_VALUES = 1 << 31


class DlibReader:
    """A cursor over a dlib serialized byte string; every ``read_*`` advances it."""

    def __init__(self, data: bytes, *, source: str = "<bytes>") -> None:
        self._data = memoryview(bytes(data))
        self._pos = 0
        self.source = source

    @property
    def offset(self) -> int:
        """Byte offset of the next unread byte."""
        return self._pos

    @property
    def remaining(self) -> int:
        """Number of unread bytes."""
        return len(self._data) - self._pos

    def error(self, message: str, offset: int | None = None) -> ModelPackError:
        """Build (not raise) a ModelPackError that names the source and the byte offset."""
        where = self._pos if offset is None else offset
        return ModelPackError(f"{self.source}: {message} at byte offset {where}")

    def read_bytes(self, count: int) -> bytes:
        """Read exactly ``count`` raw bytes."""
        if count < 0:
            raise self.error(f"negative byte count {count}")
        if count > self.remaining:
            raise self.error(f"truncated input: need {count} bytes, {self.remaining} left")
        start = self._pos
        self._pos += count
        return bytes(self._data[start:self._pos])

    def read_int(self, *, max_bytes: int = 8, signed: bool = True) -> int:
        """Read one integer; ``max_bytes`` is the size of the C++ type it was written from."""
        start = self._pos
        control = self.read_bytes(1)[0]
        size = control & 0x0F
        if control & 0x70:
            raise self.error(f"bad integer control byte 0x{control:02x}", start)
        if size == 0 or size > max_bytes:
            raise self.error(
                f"integer of {size} bytes where at most {max_bytes} fit (control 0x{control:02x})",
                start,
            )
        negative = bool(control & 0x80)
        if negative and not signed:
            raise self.error("negative value for an unsigned integer", start)
        magnitude = int.from_bytes(self.read_bytes(size), "little")
        return -magnitude if negative else magnitude

    def read_uint(self, *, max_bytes: int = 8) -> int:
        """Read one unsigned integer (e.g. a size or a ``long`` dimension that must be >= 0)."""
        return self.read_int(max_bytes=max_bytes, signed=False)

    def read_float(self) -> float:
        """Read one float or double stored as mantissa and exponent."""
        start = self._pos
        if self.remaining and self._data[self._pos] & 0x70:
            raise self.error("float in dlib's old ASCII format is not supported", start)
        mantissa = self.read_int(max_bytes=8)
        exponent = self.read_int(max_bytes=2)
        if exponent == _INF_EXP:
            return math.inf
        if exponent == _NINF_EXP:
            return -math.inf
        if exponent == _NAN_EXP:
            return math.nan
        try:
            return math.ldexp(float(mantissa), exponent)
        except OverflowError:
            raise self.error(f"float {mantissa} * 2**{exponent} out of range", start) from None

    def read_bool(self) -> bool:
        """Read one bool stored as the ASCII byte '1' or '0'."""
        start = self._pos
        byte = self.read_bytes(1)[0]
        if byte == 0x31:
            return True
        if byte == 0x30:
            return False
        raise self.error(f"bad bool byte 0x{byte:02x}", start)

    def read_string(self) -> str:
        """Read one length-prefixed string (decoded as latin-1, so any byte is accepted)."""
        length = self.read_uint()
        return self.read_bytes(length).decode("latin-1")

    def expect_string(self, *expected: str) -> str:
        """Read a string and require it to be one of ``expected``; return it."""
        start = self._pos
        value = self.read_string()
        if value not in expected:
            wanted = " or ".join(repr(e) for e in expected)
            raise self.error(f"expected {wanted}, found {value!r}", start)
        return value

    def expect_int(self, *expected: int) -> int:
        """Read an integer and require it to be one of ``expected``; return it."""
        start = self._pos
        value = self.read_int()
        if value not in expected:
            wanted = " or ".join(map(str, expected))
            raise self.error(f"expected integer {wanted}, found {value}", start)
        return value

    def read_tensor(self) -> np.ndarray:
        """Read a dlib tensor as a float32 array of shape (n, k, nr, nc)."""
        start = self._pos
        version = self.read_int()
        if version not in (1, 2):
            raise self.error(f"unknown tensor version {version}", start)
        shape = self._read_shape()
        count = math.prod(shape)
        if count > _MAX_TENSOR_VALUES:
            raise self.error(f"tensor of {count} values is implausibly large", start)
        if version == 2:
            raw = self.read_bytes(4 * count)
            return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)
        values = np.array([self.read_float() for _ in range(count)], dtype=np.float32)
        return values.reshape(shape)

    def read_alias_tensor(self) -> tuple[int, int, int, int]:
        """Read an alias tensor (a view into a layer's params): only a version and a shape."""
        start = self._pos
        version = self.read_int()
        if version != 1:
            raise self.error(f"unknown alias tensor version {version}", start)
        return self._read_shape()

    def expect_end(self) -> None:
        """Require that every byte has been consumed."""
        if self.remaining:
            raise self.error(f"{self.remaining} unread bytes after the end of the data")

    def _read_shape(self) -> tuple[int, int, int, int]:
        start = self._pos
        dims = tuple(self.read_int() for _ in range(4))
        if any(d < 0 for d in dims):
            raise self.error(f"negative tensor dimension in {dims}", start)
        return dims  # type: ignore[return-value]
