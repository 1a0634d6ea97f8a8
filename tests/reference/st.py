"""Minimal safetensors writer/reader in plain Python + numpy.

File layout (https://huggingface.co/docs/safetensors):
  - 8 bytes: little-endian uint64 N, the length of the JSON header in bytes;
  - N bytes: UTF-8 JSON object {name: {"dtype", "shape", "data_offsets": [begin, end]}, ...,
    "__metadata__": {str: str}}, padded with spaces so that 8 + N is a multiple of 8;
  - the data buffer: raw little-endian tensor bytes, C order; data_offsets are relative to the
    start of this buffer.

Only the dtypes the fixtures need are supported: F32 and F64 (plus I64/I32/U8 for reading).
"""

import json
import struct

import numpy as np

_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "U8": np.dtype("u1"),
}


def _code(dtype):
    for code, dt in _DTYPES.items():
        if dtype.kind == dt.kind and dtype.itemsize == dt.itemsize:
            return code
    return None


def _to_numpy(t):
    # Accept numpy arrays, numpy scalars and torch tensors (without importing torch here).
    if hasattr(t, "detach") and hasattr(t, "cpu"):
        t = t.detach().cpu().numpy()
    return np.asarray(t)


def save(path, tensors, metadata=None):
    """Write `tensors` (dict name -> array; insertion order is kept) to `path`.

    float32 arrays are stored as F32, float64 as F64. `metadata` values must be strings.
    """
    header = {}
    chunks = []
    offset = 0
    for name, t in tensors.items():
        if name == "__metadata__":
            raise ValueError("reserved tensor name")
        a = _to_numpy(t)
        code = _code(a.dtype)
        if code is None:
            raise TypeError("unsupported dtype %s for %s" % (a.dtype, name))
        raw = np.ascontiguousarray(a, dtype=_DTYPES[code]).tobytes(order="C")
        header[name] = {
            "dtype": code,
            "shape": [int(s) for s in a.shape],
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        md = {}
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("metadata must map str to str (%r: %r)" % (k, v))
            md[k] = v
        header["__metadata__"] = md
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    pad = (-(8 + len(hjson))) % 8
    hjson += b" " * pad
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for c in chunks:
            f.write(c)


def load(path):
    """Return (tensors, metadata): dict name -> numpy array (native dtype), dict str -> str."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {}) or {}
    data = blob[8 + n:]
    tensors = {}
    for name, info in header.items():
        dt = _DTYPES[info["dtype"]]
        b, e = info["data_offsets"]
        shape = tuple(info["shape"])
        count = int(np.prod(shape)) if shape else 1
        if e - b != count * dt.itemsize:
            raise ValueError("size mismatch for %s" % name)
        a = np.frombuffer(data[b:e], dtype=dt).reshape(shape)
        tensors[name] = a.astype(dt.newbyteorder("="))
    return tensors, metadata


if __name__ == "__main__":
    import os
    import tempfile

    rng = np.random.default_rng(0)
    t = {
        "a": rng.standard_normal((2, 3)).astype(np.float32),
        "b": np.array(1.5, dtype=np.float64),
        "c": rng.standard_normal((5,)),
    }
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "x.safetensors")
        save(p, t, {"k": "v"})
        r, md = load(p)
        assert md == {"k": "v"}
        for k in t:
            assert r[k].dtype == t[k].dtype and r[k].shape == t[k].shape
            assert np.array_equal(r[k], t[k])
        with open(p, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
        assert (8 + n) % 8 == 0
    print("st.py self-test ok")
