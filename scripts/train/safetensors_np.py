"""Safetensors files with NumPy alone (Debian 12 packages no `safetensors`).

Format: 8-byte little-endian header length L, then L bytes of JSON (padded with spaces to a
multiple of 8), then the raw little-endian tensor data. The JSON maps each tensor name to
{"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the end of the header) and
"__metadata__" to a string -> string map. Tensors are laid out back to back in the order given,
F64 before F32 so that every tensor starts at a multiple of its element size.
"""
import json
import os
import tempfile

import numpy as np

DTYPES = {"F64": np.dtype("<f8"), "F32": np.dtype("<f4")}


class FormatError(ValueError):
    """A file that is not what it claims; the message names the file and what is wrong."""


def write(path, tensors, metadata):
    """tensors: name -> float32/float64 array; metadata: str -> str. Written to a temporary file
    beside `path` and renamed over it, so a reader never sees half a file."""
    names = sorted(tensors, key=lambda name: tensors[name].dtype != np.float64)  # stable: F64 first
    header = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}}
    blobs, offset = [], 0
    for name in names:
        array = np.asarray(tensors[name])
        dtype = {np.dtype(np.float64): "F64", np.dtype(np.float32): "F32"}.get(array.dtype)
        if dtype is None:
            raise TypeError("tensor %s has dtype %s; only float32 and float64 are written" % (name, array.dtype))
        blob = np.ascontiguousarray(array, dtype=DTYPES[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".safetensors")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp's 0600 would make a shipped file private
        with os.fdopen(fd, "wb") as f:
            f.write(len(text).to_bytes(8, "little"))
            f.write(text)
            for blob in blobs:
                f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def read(path):
    """-> (metadata dict, name -> array in file order). Checks the header length, the JSON, the
    dtypes, that each span matches its shape and that the spans tile the data exactly."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise FormatError("%s: shorter than the 8-byte header length" % path)
    header_len = int.from_bytes(blob[:8], "little")
    if header_len > len(blob) - 8:
        raise FormatError("%s: header length %d runs past the end of the file" % (path, header_len))
    try:
        header = json.loads(blob[8:8 + header_len])
    except ValueError as error:
        raise FormatError("%s: header is not JSON: %s" % (path, error)) from None
    if not isinstance(header, dict):
        raise FormatError("%s: header is not a JSON object" % path)
    metadata = header.pop("__metadata__", {})
    data = memoryview(blob)[8 + header_len:]
    tensors, spans = {}, []
    for name, entry in header.items():
        try:
            dtype = DTYPES[entry["dtype"]]
            shape = [int(s) for s in entry["shape"]]
            begin, end = (int(v) for v in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise FormatError("%s: tensor %s: bad entry %s" % (path, name, entry)) from None
        if min(shape, default=0) < 0 or end - begin != int(np.prod(shape)) * dtype.itemsize:
            raise FormatError("%s: tensor %s: span [%d, %d) does not hold shape %s of %s"
                              % (path, name, begin, end, shape, entry["dtype"]))
        if begin < 0 or end > len(data):
            raise FormatError("%s: tensor %s: span [%d, %d) outside the data" % (path, name, begin, end))
        spans.append((begin, end, name))
        tensors[name] = np.frombuffer(data[begin:end], dtype=dtype).reshape(shape)
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise FormatError("%s: tensor %s starts at %d, expected %d (hole or overlap)" % (path, name, begin, position))
        position = end
    if position != len(data):
        raise FormatError("%s: %d bytes after the last tensor" % (path, len(data) - position))
    return metadata, tensors
