"""Photos with camera metadata, written by PIL -> tests/fixtures/metadata*.

Run from the repository root:  /usr/bin/python3 tests/reference/make_metadata_fixtures.py

A small noisy RGB image saved by PIL (independent of our reader and writer) with:
  - an Exif block (Make, Model, DateTime, Orientation 6 = "rotate 90 clockwise to display");
    its raw TIFF bytes (what follows "Exif\\0\\0" in JPEG's APP1, all of PNG's eXIf chunk) go
    to metadata.exif;
  - an ICC profile of 70,000 bytes, more than one JPEG segment holds (65,519), so the JPEG splits
    it into two APP2 segments. Its bytes are a formula the C++ test recomputes:
    byte i = (7 i + i // 251) mod 256 (not a valid profile; nothing here parses it).
  - an XMP packet (metadata.xmp), which PIL 9.4 writes into a PNG as an iTXt chunk but not into a
    JPEG: there it goes in through `extra` as an APP1 segment built here from the XMP
    specification (Part 3, 1.1.3: "http://ns.adobe.com/xap/1.0/\0", then the packet).
The PNG stores the same Exif as an eXIf chunk and the profile zlib-compressed in iCCP;
metadata_zxmp.png holds only the XMP, compressed.
"""

import os
import struct

import numpy as np
from PIL import Image, PngImagePlugin

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


XMP = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
       '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="4"/>'
       '</rdf:RDF></x:xmpmeta>\n<?xpacket end="w"?>').encode("utf-8")
XMP_ID = b"http://ns.adobe.com/xap/1.0/\x00"


def main():
    rng = np.random.default_rng(7)
    px = (np.clip(0.5 + 0.1 * rng.standard_normal((12, 20, 3)), 0, 1) * 255).round().astype(np.uint8)
    img = Image.fromarray(px, "RGB")
    exif = exif_block()
    assert exif.startswith(b"Exif\x00\x00")
    icc = icc_bytes()
    jpg, png = os.path.join(OUT, "metadata.jpg"), os.path.join(OUT, "metadata.png")
    app1_xmp = b"\xff\xe1" + struct.pack(">H", 2 + len(XMP_ID) + len(XMP)) + XMP_ID + XMP
    img.save(jpg, quality=95, exif=exif, icc_profile=icc, extra=app1_xmp)
    text = PngImagePlugin.PngInfo()
    text.add_itxt("XML:com.adobe.xmp", XMP.decode("utf-8"))
    img.save(png, exif=exif, icc_profile=icc, pnginfo=text)
    ztext = PngImagePlugin.PngInfo()  # the XMP alone, zlib-compressed (iTXt's compression flag 1)
    ztext.add_itxt("XML:com.adobe.xmp", XMP.decode("utf-8"), zip=True)
    zpng = os.path.join(OUT, "metadata_zxmp.png")
    img.save(zpng, pnginfo=ztext)
    with Image.open(zpng) as im:
        assert im.info["XML:com.adobe.xmp"].encode("utf-8") == XMP
    assert XMP not in open(zpng, "rb").read()
    with open(os.path.join(OUT, "metadata.exif"), "wb") as f:
        f.write(exif[6:])
    with open(os.path.join(OUT, "metadata.xmp"), "wb") as f:
        f.write(XMP)

    # Read back with PIL, and check the JPEG really splits the profile and the PNG has its chunks.
    for path in (jpg, png):
        with Image.open(path) as im:
            assert im.info["icc_profile"] == icc, path
            assert im.getexif()[0x0112] == 6 and im.getexif()[0x010F] == "AMSNetTestCam", path
            if path == jpg:
                assert ("APP1", XMP_ID + XMP) in im.applist
            else:
                assert im.info["XML:com.adobe.xmp"].encode("utf-8") == XMP
    data = open(jpg, "rb").read()
    assert data.count(b"ICC_PROFILE\x00") == 2 and data.count(b"Exif\x00\x00") == 1
    data = open(png, "rb").read()
    assert b"iCCP" in data and b"eXIf" in data
    print("wrote", jpg, png, "metadata.exif and metadata.xmp")


if __name__ == "__main__":
    main()
