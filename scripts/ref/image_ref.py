"""Reference for test/image.test.ts: deterministic test images and what PIL makes of them.

Run with Debian's python3 (PIL 9.4 + numpy):
    /usr/bin/python3 scripts/ref/image_ref.py
Writes test/fixtures/image/:
  *.png, *.jpg          the images (PNG exotics come from the small writer below, so every colour
                        type / bit depth / tRNS / Adam7 / filter type is covered; the rest from PIL)
  corrupt.png           a valid PNG cut in the middle of its IDAT chunk
  not-an-image.png      text with a .png name
  expected.json         for each image: PIL's Image.open(p).convert('RGB') pixels, its
                        resize to shortest side 24 (PIL BICUBIC), the torchvision crop offsets;
                        extra resizes to arbitrary sizes; the 300x200 -> 224 case; normalised
                        tensors for two cases (float64 and a float32 Hugging Face-style path).
uint8 arrays (row-major HWC) are {"zlib": base64 of zlib-compressed raw bytes} when small, else
{"sha256": hex digest of the raw bytes}; JPEG decodes are always stored in full (the test compares
them with a tolerance). Normalised tensors are base64 of little-endian float64 / float32 (CHW).
Not needed at test time.
"""
import base64
import hashlib
import io
import json
import os
import struct
import warnings
import zlib

import numpy as np
from PIL import Image

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIX = os.path.join(ROOT, "test", "fixtures", "image")
SIZE = 24
MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
STD = np.array([0.26862954, 0.26130258, 0.27577711])
BICUBIC = Image.Resampling.BICUBIC


def pack(a, limit=40000):
    """Small arrays in full (so a failing test can say where it differs), large ones as a hash
    (the fixture folder stays well under 1 MB)."""
    raw = np.ascontiguousarray(a, dtype=np.uint8).tobytes()
    if len(raw) > limit:
        return {"sha256": hashlib.sha256(raw).hexdigest()}
    return {"zlib": base64.b64encode(zlib.compress(raw, 9)).decode()}


def unpack(p, shape):
    return np.frombuffer(zlib.decompress(base64.b64decode(p["zlib"])), np.uint8).reshape(shape)


def b64(a, dtype):
    return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode()


def pattern(h, w, c, seed, peak=255.0, noise=6.0):
    """Gradients, low-amplitude noise (keeps the PNGs compressible), a saturated block, a dark
    diagonal and a 2-pixel checkerboard: smooth areas and sharp edges for the resampler."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    fx = x / max(w - 1, 1)
    fy = y / max(h - 1, 1)
    chans = [fx, fy, 0.5 + 0.4 * np.sin(6.0 * fx + 4.0 * fy), 1.0 - 0.7 * fx * fy]
    img = np.stack(chans[:c], axis=-1) * peak
    img += rng.normal(0.0, noise * peak / 255.0, img.shape)
    img[h // 4: h // 2 + 1, w // 3: (2 * w) // 3 + 1] = peak * np.array([0.98, 0.04, 0.12, 0.6])[:c]
    d = np.abs(x * h - y * w) <= max(h, w) * 0.6
    img[d] = 0.0
    cb = (((x.astype(int) // 2) + (y.astype(int) // 2)) % 2).astype(np.float64) * peak
    corner = (x < w / 4) & (y >= (3 * h) / 4)
    img[corner] = cb[corner][:, None] if c > 1 else cb[corner][:, None]
    return np.clip(np.rint(img), 0, peak)


# ---- a minimal PNG writer (so the fixtures cover what PIL's encoder never emits) ----

def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _rows_bytes(a, depth):
    """a: (h, w, c) integer samples -> list of packed scanlines (no filter byte)."""
    h, w, c = a.shape
    rows = []
    for r in range(h):
        s = a[r].reshape(-1).astype(np.int64)
        if depth == 16:
            rows.append(s.astype(">u2").tobytes())
        elif depth == 8:
            rows.append(s.astype(np.uint8).tobytes())
        else:
            per = 8 // depth
            pad = (-len(s)) % per
            s = np.concatenate([s, np.zeros(pad, np.int64)]).reshape(-1, per)
            shifts = np.array([8 - depth * (i + 1) for i in range(per)])
            rows.append((s << shifts).sum(axis=1).astype(np.uint8).tobytes())
    return rows


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _filter_rows(rows, bpp, first_type):
    """Cycles through the five filter types so the decoder's unfiltering is exercised."""
    out = bytearray()
    prev = bytes(len(rows[0])) if rows else b""
    for i, row in enumerate(rows):
        t = (first_type + i) % 5
        f = bytearray(len(row))
        for j, v in enumerate(row):
            a = row[j - bpp] if j >= bpp else 0
            b = prev[j]
            c = prev[j - bpp] if j >= bpp else 0
            pred = [0, a, b, (a + b) // 2, _paeth(a, b, c)][t]
            f[j] = (v - pred) & 0xFF
        out += bytes([t]) + f
        prev = row
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(path, a, color_type, depth, palette=None, trns=None, interlace=False):
    a = a if a.ndim == 3 else a[:, :, None]
    h, w, c = a.shape
    bpp = max(1, c * depth // 8)
    raw = b""
    if interlace:
        for k, (x0, y0, dx, dy) in enumerate(ADAM7):
            sub = a[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += _filter_rows(_rows_bytes(sub, depth), bpp, k)
    else:
        raw = _filter_rows(_rows_bytes(a, depth), bpp, 0)
    out = b"\x89PNG\r\n\x1a\n"
    out += _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0))
    if palette is not None:
        out += _chunk(b"PLTE", np.asarray(palette, np.uint8).tobytes())
    if trns is not None:
        out += _chunk(b"tRNS", trns)
    out += _chunk(b"IDAT", zlib.compress(raw, 9))
    out += _chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(out)


def make_palette(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3))


def build():
    os.makedirs(FIX, exist_ok=True)
    for f in os.listdir(FIX):
        os.remove(os.path.join(FIX, f))
    files = {}  # name -> note

    def pil_save(name, arr, mode, **kw):
        Image.fromarray(arr.astype(np.uint8), mode).save(os.path.join(FIX, name), **kw)
        files[name] = mode

    # Plain 8-bit images through PIL's own encoder.
    pil_save("rgb-37x53.png", pattern(53, 37, 3, 1), "RGB")
    pil_save("rgb-300x200.png", pattern(200, 300, 3, 2, noise=3.0), "RGB")
    pil_save("rgb-224x224.png", pattern(224, 224, 3, 3, noise=3.0), "RGB")
    pil_save("rgb-64x500.png", pattern(500, 64, 3, 4), "RGB")
    pil_save("rgb-1x1.png", np.array([[[200, 30, 77]]]), "RGB")
    pil_save("rgb-17x13.png", pattern(13, 17, 3, 5), "RGB")
    pil_save("gray-53x41.png", pattern(41, 53, 1, 6)[:, :, 0], "L")
    rgba = pattern(30, 45, 4, 7)
    rgba[0:6, :, 3] = 0  # fully transparent rows keep their colour under PIL's convert('RGB')
    pil_save("rgba-45x30.png", rgba, "RGBA")

    # Exotic PNGs from the writer above.
    w = lambda name, *a, **k: (write_png(os.path.join(FIX, name), *a, **k), files.__setitem__(name, "writer"))
    idx8 = (pattern(27, 33, 1, 8)[:, :, 0]).astype(np.int64) % 200
    pal = make_palette(200, 9)
    w("palette8-33x27.png", idx8, 3, 8, palette=pal,
      trns=bytes(np.linspace(0, 255, 200).astype(np.uint8)))
    for depth, (hh, ww) in [(1, (9, 31)), (2, (11, 13)), (4, (27, 33))]:
        n = 1 << depth
        idx = (pattern(hh, ww, 1, 10 + depth)[:, :, 0]).astype(np.int64) % n
        w(f"palette{depth}-{ww}x{hh}.png", idx, 3, depth, palette=make_palette(n, 20 + depth))
    for depth in (1, 2, 4):
        g = (pattern(11, 19, 1, 30 + depth)[:, :, 0]).astype(np.int64) >> (8 - depth)
        w(f"gray{depth}bit-19x11.png", g, 0, depth)
    g8 = pattern(15, 20, 1, 40)[:, :, 0].astype(np.int64)
    g8[3:6, 4:9] = 77
    w("gray-trns-20x15.png", g8, 0, 8, trns=struct.pack(">H", 77))
    c8 = pattern(15, 20, 3, 41).astype(np.int64)
    c8[3:6, 4:9] = (10, 20, 30)
    w("rgb-trns-20x15.png", c8, 2, 8, trns=struct.pack(">HHH", 10, 20, 30))
    w("la8-23x17.png", pattern(17, 23, 2, 42).astype(np.int64), 4, 8)
    w("la16-23x17.png", pattern(17, 23, 2, 43, peak=65535.0).astype(np.int64), 4, 16)
    w("rgb16-25x18.png", pattern(18, 25, 3, 44, peak=65535.0).astype(np.int64), 2, 16)
    w("rgba16-21x19.png", pattern(19, 21, 4, 45, peak=65535.0).astype(np.int64), 6, 16)
    g16 = pattern(33, 40, 1, 46, peak=65535.0)[:, :, 0].astype(np.int64)
    g16[:, :20] = (pattern(33, 20, 1, 47, peak=400.0)[:, :, 0]).astype(np.int64)  # some values < 256
    w("gray16-40x33.png", g16, 0, 16)
    w("interlaced-rgb-41x37.png", pattern(37, 41, 3, 48).astype(np.int64), 2, 8, interlace=True)
    w("interlaced-palette2-13x11.png", (pattern(11, 13, 1, 49)[:, :, 0]).astype(np.int64) % 4, 3, 2,
      palette=make_palette(4, 50), interlace=True)
    w("interlaced-gray16-9x7.png", pattern(7, 9, 1, 51, peak=300.0)[:, :, 0].astype(np.int64), 0, 16,
      interlace=True)

    # JPEGs (libjpeg-turbo through PIL).
    jp = pattern(80, 120, 3, 60, noise=3.0).astype(np.uint8)
    pil_save("jpeg420-120x80.jpg", jp, "RGB", quality=90)
    pil_save("jpeg444-120x80.jpg", jp, "RGB", quality=95, subsampling=0)
    pil_save("jpeg-progressive-120x80.jpg", jp, "RGB", quality=90, progressive=True)
    pil_save("jpeg-gray-61x47.jpg", pattern(47, 61, 1, 61)[:, :, 0], "L", quality=92)

    # Broken files.
    good = open(os.path.join(FIX, "rgb-37x53.png"), "rb").read()
    with open(os.path.join(FIX, "corrupt.png"), "wb") as f:
        f.write(good[: len(good) // 2])
    with open(os.path.join(FIX, "not-an-image.png"), "wb") as f:
        f.write(b"This is a text file with a .png name.\n")
    with open(os.path.join(FIX, "truncated.jpg"), "wb") as f:
        f.write(open(os.path.join(FIX, "jpeg420-120x80.jpg"), "rb").read()[:700])

    return sorted(n for n in files)


def resized_size(w, h, size):
    # torchvision / Hugging Face shortest-edge rule: the long side is int(size * long / short).
    if w <= h:
        return size, int(size * h / w)
    return int(size * w / h), size


def tv_crop(h, w, ch, cw):
    return int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))


def hf_crop(h, w, ch, cw):
    return (h - ch) // 2, (w - cw) // 2


def normalised(rgb):
    x = rgb.astype(np.float64) / 255.0
    return ((x - MEAN) / STD).transpose(2, 0, 1)


def normalised_hf_f32(rgb):
    # transformers' rescale (float64 multiply, cast to float32) then normalize in float32.
    x = (rgb.astype(np.float64) * (1 / 255)).astype(np.float32)
    return ((x - MEAN.astype(np.float32)) / STD.astype(np.float32)).transpose(2, 0, 1)


def main():
    # Pillow warns that palette transparency should become RGBA; convert('RGB') is the point here.
    warnings.filterwarnings("ignore", message="Palette images with Transparency")
    names = build()
    images = {}
    decoded = {}
    for name in names:
        im = Image.open(os.path.join(FIX, name))
        rgb = np.asarray(im.convert("RGB"))
        decoded[name] = rgb
        h, w = rgb.shape[:2]
        rw, rh = resized_size(w, h, SIZE)
        r = np.asarray(Image.fromarray(rgb).resize((rw, rh), BICUBIC))
        images[name] = {
            "pil_mode": im.mode, "width": w, "height": h, "decoded": pack(rgb, 0 if name.endswith(".png") and w * h > 4000 else 10 ** 9),
            "resized": {"width": rw, "height": rh, "data": pack(r)},
            "crop_tv": tv_crop(rh, rw, SIZE, SIZE), "crop_hf": hf_crop(rh, rw, SIZE, SIZE),
        }

    def resize_case(name, ow, oh):
        r = np.asarray(Image.fromarray(decoded[name]).resize((ow, oh), BICUBIC))
        return {"source": name, "width": ow, "height": oh, "data": pack(r)}

    extra = [resize_case(*c) for c in [
        ("rgb-300x200.png", 3, 2), ("rgb-300x200.png", 7, 5), ("rgb-300x200.png", 150, 100),
        ("rgb-300x200.png", 299, 201), ("rgb-300x200.png", 301, 13), ("rgb-300x200.png", 1, 1),
        ("rgb-17x13.png", 200, 150), ("rgb-64x500.png", 64, 37), ("rgb-64x500.png", 5, 500),
        ("rgb-1x1.png", 24, 24), ("gray-53x41.png", 100, 3), ("rgb-37x53.png", 36, 52),
    ]]
    # Single-channel resize straight from the 'L' image: equal to the RGB path, channel by channel.
    gray_l = np.asarray(Image.open(os.path.join(FIX, "gray-53x41.png")).resize((24, 18), BICUBIC))

    # The CLIP-size case: 300x200 -> 336x224 -> centre 224x224.
    src = decoded["rgb-300x200.png"]
    big = np.asarray(Image.fromarray(src).resize((336, 224), BICUBIC))
    t, l = tv_crop(224, 336, 224, 224)
    clip224 = {"source": "rgb-300x200.png", "resized_width": 336, "resized_height": 224,
               "crop": [t, l], "data": pack(big[t:t + 224, l:l + 224])}

    norm = []
    for name, rule in [("rgb-64x500.png", "torchvision"), ("rgb-64x500.png", "hf"), ("gray-53x41.png", "torchvision")]:
        e = images[name]
        r = unpack(e["resized"]["data"], (e["resized"]["height"], e["resized"]["width"], 3))
        t, l = e["crop_tv"] if rule == "torchvision" else e["crop_hf"]
        c = r[t:t + SIZE, l:l + SIZE]
        f64 = normalised(c)
        f32 = normalised_hf_f32(c)
        print(f"{name} {rule}: max |float64 - hf float32| = {np.abs(f64 - f32.astype(np.float64)).max():.3g}")
        norm.append({"source": name, "crop_rule": rule, "crop": [t, l],
                     "float64": b64(f64, "<f8"), "hf_float32": b64(f32, "<f4")})

    out = {"size": SIZE, "mean": MEAN.tolist(), "std": STD.tolist(), "images": images,
           "resize_cases": extra, "gray_l_24x18": pack(gray_l), "clip224": clip224, "normalised": norm}
    with open(os.path.join(FIX, "expected.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))
    total = sum(os.path.getsize(os.path.join(FIX, f)) for f in os.listdir(FIX))
    print(f"{len(names)} images, fixture folder {total / 1024:.0f} KiB")
    for n in names:
        print(f"  {n}: PIL mode {images[n]['pil_mode']}")


if __name__ == "__main__":
    main()
