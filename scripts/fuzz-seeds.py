"""Writes fuzz/seeds/: small PNG, safetensors and .pth files in the layouts the parsers meet (run once, in
../shared/oracle's environment, which has torch, PIL and numpy; the output is committed). The JPEG corpus and
configs/ seed the image and config targets too (scripts/fuzz.sh)."""
import io
import json
import pickle
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
out = root / "fuzz" / "seeds"
rng = np.random.default_rng(0)


def put(target, name, data):
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


# PNG: the colour types and bit depths the decoder branches on.
rgb = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
for name, img, kw in [
    ("rgb8.png", Image.fromarray(rgb), {}),
    ("rgba8.png", Image.fromarray(np.dstack([rgb, rgb[..., :1]])), {}),
    ("gray8.png", Image.fromarray(rgb[..., 0]), {}),
    ("gray_alpha.png", Image.fromarray(rgb[..., 0]).convert("LA"), {}),
    ("gray16.png", Image.fromarray(rgb[..., 0].astype(np.uint16) * 257), {}),
    ("palette.png", Image.fromarray(rgb).quantize(16), {}),
    ("bilevel.png", Image.fromarray(rgb[..., 0] > 127), {}),
    ("interlaced.png", Image.fromarray(rgb), {"interlace": 1}),
]:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    put("image_decode", name, buf.getvalue())


# safetensors: every float dtype, an empty file, metadata, a non-float dtype.
def safetensors(tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    for key, arr, dtype in tensors:
        raw = arr.tobytes()
        header[key] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


x = rng.standard_normal((2, 3)).astype(np.float32)
put("safetensors", "f32.safetensors", safetensors([("backbone.conv1.weight", x, "F32"), ("b", x[0], "F32")]))
put("safetensors", "f16.safetensors", safetensors([("a", x.astype(np.float16), "F16")]))
put("safetensors", "f64.safetensors", safetensors([("a", x.astype(np.float64), "F64")], {"format": "pt"}))
put("safetensors", "bf16.safetensors", safetensors([("a", (x.view(np.uint32) >> 16).astype(np.uint16), "BF16")]))
put("safetensors", "i64.safetensors", safetensors([("a", np.arange(4, dtype=np.int64), "I64")]))
put("safetensors", "empty.safetensors", safetensors([]))
put("safetensors", "scalar.safetensors", safetensors([("s", np.float32(1.5).reshape(()), "F32")]))

# .pth: torch.save's zip and legacy layouts, mmdetection's {'meta', 'state_dict'}, views, non-float tensors.
def save(obj, **kw):
    buf = io.BytesIO()
    torch.save(obj, buf, **kw)
    return buf.getvalue()


t = torch.from_numpy(x)
sd = {"backbone.conv1.weight": t, "backbone.bn.num_batches_tracked": torch.tensor(3)}
put("pth", "mmdet_zip.pth", save({"meta": {"epoch": 24}, "state_dict": sd}))
put("pth", "mmdet_legacy.pth", save({"meta": {}, "state_dict": sd}, _use_new_zipfile_serialization=False))
put("pth", "bare.pth", save({"a": t.half(), "b": t.double(), "c": t.bfloat16()}))
put("pth", "views.pth", save({"a": t, "a_t": t.t(), "row": t[1]}))


class Exec:
    def __reduce__(self):
        import os
        return (os.system, ("true",))


zbuf = io.BytesIO()
with zipfile.ZipFile(zbuf, "w") as z:
    z.writestr("archive/data.pkl", pickle.dumps({"state_dict": Exec()}, protocol=2))
    z.writestr("archive/version", "3\n")
put("pth", "pickle_global.pth", zbuf.getvalue())
print("wrote", out)
