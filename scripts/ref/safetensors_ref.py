"""Writes safetensors files by hand with Python's json + struct (no torch, no safetensors
package), to check that src/models/safetensors.ts reads what another implementation writes.

    /usr/bin/python3 scripts/ref/safetensors_ref.py
writes test/fixtures/safetensors/{python-written.safetensors, sharded/*, expected.json}.
Not needed at test time.
"""
import json
import math
import os
import struct

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "test", "fixtures", "safetensors")

FMT = {"F32": "f", "F16": "e", "F64": "d", "I64": "q", "I32": "i", "U8": "B", "BOOL": "?"}


def bf16_bytes(values):
    # bf16 is the top half of the float32 bits; these values are exact in bf16.
    return b"".join(struct.pack("<f", v)[2:] for v in values)


def pack(dtype, values):
    if dtype == "BF16":
        return bf16_bytes(values)
    return struct.pack("<%d%s" % (len(values), FMT[dtype]), *values)


def write(path, tensors, metadata=None, order=None):
    """tensors: {key: (dtype, shape, values)}; data laid out in `order` (default: key order),
    header keys in insertion order, padded with spaces to a multiple of 8 like the reference."""
    header, blobs, offsets, offset = {}, [], {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for key in order or list(tensors):
        dtype, shape, values = tensors[key]
        b = pack(dtype, values)
        offsets[key] = [offset, offset + len(b)]
        blobs.append(b)
        offset += len(b)
    for key, (dtype, shape, _) in tensors.items():
        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": offsets[key]}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def jsonable(values):
    out = []
    for v in values:
        if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
            out.append(str(v))
        elif isinstance(v, float) and v == 0 and math.copysign(1, v) < 0:
            out.append("-0")
        else:
            out.append(v)
    return out


def main():
    os.makedirs(os.path.join(OUT, "sharded"), exist_ok=True)
    tensors = {
        "text.weight": ("F32", [2, 3], [0.5, -1.25, 3.0e-8, 1e30, -0.0, 7.0]),
        "half": ("F16", [7], [1.0, -2.5, 65504.0, 2.0 ** -24, -0.0, float("inf"), 0.333251953125]),
        "brain": ("BF16", [2, 2], [1.0, -3.140625, 2.0 ** 100, float("-inf")]),
        "position_ids": ("I64", [1, 5], [0, 1, 2, 3, 2 ** 40]),
        "ids32": ("I32", [3], [-2147483648, 0, 2147483647]),
        "double": ("F64", [2], [0.1, -1e300]),
        "bytes": ("U8", [3], [0, 127, 255]),
        "mask": ("BOOL", [2], [True, False]),
        "scalar": ("F32", [], [42.0]),
        "empty": ("F32", [0], []),
        "empty2d": ("F16", [2, 0], []),
    }
    # Data deliberately not in header order, and a 2-byte tensor before 8-byte ones, so offsets
    # are unaligned: readers must not assume the reference writer's layout.
    order = ["half", "text.weight", "position_ids", "ids32", "empty", "double", "bytes", "mask",
             "brain", "scalar", "empty2d"]
    write(os.path.join(OUT, "python-written.safetensors"), tensors, {"format": "pt", "note": "é"}, order)

    shard_a = {k: tensors[k] for k in ["text.weight", "half"]}
    shard_b = {k: tensors[k] for k in ["brain", "position_ids", "scalar"]}
    write(os.path.join(OUT, "sharded", "model-00001-of-00002.safetensors"), shard_a, {"format": "pt"})
    write(os.path.join(OUT, "sharded", "model-00002-of-00002.safetensors"), shard_b, {"format": "pt"})
    weight_map = {k: "model-00001-of-00002.safetensors" for k in shard_a}
    weight_map.update({k: "model-00002-of-00002.safetensors" for k in shard_b})
    with open(os.path.join(OUT, "sharded", "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 123}, "weight_map": weight_map}, f, indent=2)

    expected = {k: {"dtype": d, "shape": s, "values": jsonable([float(x) if d in ("F32", "F16", "BF16", "F64") else int(x) for x in v])}
                for k, (d, s, v) in tensors.items()}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"metadata": {"format": "pt", "note": "é"}, "tensors": expected}, f, indent=1)


if __name__ == "__main__":
    main()
