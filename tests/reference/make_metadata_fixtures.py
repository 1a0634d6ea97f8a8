"""Photos with camera metadata, written by PIL -> tests/fixtures/metadata.{jpg,png,exif}.

Run from the repository root:  /usr/bin/python3 tests/reference/make_metadata_fixtures.py

A small noisy RGB image saved by PIL (independent of our reader and writer) with:
  - an Exif block (Make, Model, DateTime, Orientation 6 = "rotate 90 clockwise to display");
    its raw TIFF bytes (what follows "Exif\\0\\0" in JPEG's APP1, all of PNG's eXIf chunk) go
    to metadata.exif;
  - an ICC profile of 70,000 bytes, more than one JPEG segment holds (65,519), so the JPEG splits
    it into two APP2 segments. Its bytes are a formula the C++ test recomputes:
    byte i = (7 i + i // 251) mod 256 (not a valid profile; nothing here parses it).
The PNG stores the same Exif as an eXIf chunk and the profile zlib-compressed in iCCP.
"""

import os

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "fixtures"))

ICC_SIZE = 70000


def icc_bytes():
    i = np.arange(ICC_SIZE, dtype=np.int64)
    return ((7 * i + i // 251) % 256).astype(np.uint8).tobytes()


def exif_block():
    exif = Image.Exif()
    exif[0x010F] = "AMSNetTestCam"       # Make
    exif[0x0110] = "Model 7"             # Model
    exif[0x0132] = "2026:11:25 10:00:00"  # DateTime
    exif[0x0112] = 6                     # Orientation
    return exif.tobytes()  # b"Exif\0\0" + TIFF


def main():
    rng = np.random.default_rng(7)
    px = (np.clip(0.5 + 0.1 * rng.standard_normal((12, 20, 3)), 0, 1) * 255).round().astype(np.uint8)
    img = Image.fromarray(px, "RGB")
    exif = exif_block()
    assert exif.startswith(b"Exif\x00\x00")
    icc = icc_bytes()
    jpg, png = os.path.join(OUT, "metadata.jpg"), os.path.join(OUT, "metadata.png")
    img.save(jpg, quality=95, exif=exif, icc_profile=icc)
    img.save(png, exif=exif, icc_profile=icc)
    with open(os.path.join(OUT, "metadata.exif"), "wb") as f:
        f.write(exif[6:])

    # Read back with PIL, and check the JPEG really splits the profile and the PNG has its chunks.
    for path in (jpg, png):
        with Image.open(path) as im:
            assert im.info["icc_profile"] == icc, path
            assert im.getexif()[0x0112] == 6 and im.getexif()[0x010F] == "AMSNetTestCam", path
    data = open(jpg, "rb").read()
    assert data.count(b"ICC_PROFILE\x00") == 2 and data.count(b"Exif\x00\x00") == 1
    data = open(png, "rb").read()
    assert b"iCCP" in data and b"eXIf" in data
    print("wrote", jpg, png, "and metadata.exif")


if __name__ == "__main__":
    main()
