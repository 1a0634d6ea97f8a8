// Photo metadata (Exif, ICC profile, XMP): read from files PIL wrote (tests/reference/
// make_metadata_fixtures.py), carried through save_image into JPEG and PNG, and malformed
// metadata never an error.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "engine/image_io.h"
#include "engine/image_metadata.h"
#include "files.h"
#include "helpers.h"

namespace fs = std::filesystem;
using namespace ams;
using ams::test::read_bytes;
using ams::test::write_bytes;
using TempDir = ams::test::TempDir;

namespace {

// The fixtures' profile: byte i = (7 i + i / 251) mod 256, 70,000 bytes (two JPEG segments).
std::string fixture_icc() {
    std::string s(70000, '\0');
    for (size_t i = 0; i < s.size(); ++i) s[i] = (char)((7 * i + i / 251) % 256);
    return s;
}

std::string fixture(const std::string& name) { return test::source_path("tests/fixtures/" + name); }

Tensor test_image(int64_t h, int64_t w) {
    Tensor t = Tensor::empty({1, 3, h, w});
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = (float)((i * 37) % 101) / 100.f;
    return t;
}

}  // namespace

TEST_CASE("metadata: the Exif block, ICC profile and XMP packet PIL wrote into a JPEG and a PNG") {
    const std::string exif = read_bytes(fixture("metadata.exif")), xmp = read_bytes(fixture("metadata.xmp"));
    REQUIRE(xmp.find("xmp:Rating=\"4\"") != std::string::npos);
    REQUIRE(exif.size() > 8);
    CHECK((exif.compare(0, 4, "MM\0*", 4) == 0 || exif.compare(0, 4, "II*\0", 4) == 0));  // TIFF header
    for (const char* name : {"metadata.jpg", "metadata.png"}) {
        CAPTURE(name);
        const ImageMetadata m = read_metadata(fixture(name));
        CHECK(m.exif == exif);
        CHECK(m.icc == fixture_icc());  // in the JPEG: joined from two APP2 segments
        CHECK(m.xmp == xmp);
        ImageExtras extras;
        const Tensor img = load_image(fixture(name), &extras);
        CHECK(img.shape() == Shape({1, 3, 12, 20}));
        CHECK(extras.metadata.exif == exif);
        CHECK(extras.metadata.icc == m.icc);
        CHECK(extras.metadata.xmp == xmp);
    }
    const ImageMetadata z = read_metadata(fixture("metadata_zxmp.png"));  // a compressed iTXt
    CHECK(z.xmp == xmp);
    CHECK(z.exif.empty());
    CHECK(z.icc.empty());
    // Formats and files without metadata.
    CHECK(read_metadata(test::data_path("polyu/Canon5D2_5_160_3200_chair_11_real.JPG")).empty());
    CHECK(read_metadata(test::data_path("sidd-samples/GT_0.png")).empty());
    // A real one: Pixelmator's eXIf and XMP chunks (PIL: info["exif"] is 198 bytes, "Exif\0\0" +
    // the chunk; info["XML:com.adobe.xmp"] 1,040 characters, all ASCII).
    const ImageMetadata sidd = read_metadata(test::data_path("sidd-samples/GT_11.png"));
    CHECK(sidd.exif.size() == 192);
    CHECK(sidd.icc.empty());
    CHECK(sidd.xmp.size() == 1040);
    CHECK(sidd.xmp.rfind("<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"", 0) == 0);
    CHECK(sidd.xmp.find("<exif:PixelXDimension>241</exif:PixelXDimension>") != std::string::npos);
    CHECK(read_metadata("/nonexistent/file.jpg").empty());
}

TEST_CASE("metadata: save_image carries it into JPEG and PNG (8 and 16-bit) without changing the pixels") {
    TempDir tmp("metadata");
    ImageMetadata meta;
    meta.exif = read_bytes(fixture("metadata.exif"));
    meta.icc = fixture_icc();
    meta.xmp = read_bytes(fixture("metadata.xmp"));
    const Tensor img = test_image(9, 14);
    struct Case {
        const char* name;
        int bits;
    };
    for (Case c : {Case{"a.jpg", 8}, Case{"a.JPEG", 8}, Case{"a.png", 8}, Case{"a16.png", 16}}) {
        CAPTURE(c.name);
        const std::string with = tmp / c.name, without = tmp / (std::string("plain_") + c.name);
        CHECK(save_image(with, img, c.bits, meta) == "");
        CHECK(save_image(without, img, c.bits) == "");
        const ImageMetadata back = read_metadata(with);
        CHECK(back.exif == meta.exif);
        CHECK(back.icc == meta.icc);
        CHECK(back.xmp == meta.xmp);
        CHECK(read_metadata(without).empty());
        // The decoder sees the same image: the metadata went in whole, between segments/chunks.
        const Tensor a = load_image(with), b = load_image(without);
        CHECK(a.to_double() == b.to_double());
        // Only one of each; a JPEG's JFIF header stays first.
        const std::string bytes = read_bytes(with);
        CHECK(bytes.find("Exif\0\0", 0, 6) == bytes.rfind("Exif\0\0", std::string::npos, 6));
        if (c.bits == 8 && std::string(c.name).find('J') != std::string::npos) CHECK(bytes.compare(6, 4, "JFIF") == 0);
    }
    // Each alone.
    for (const char* name : {"e.jpg", "e.png"}) {
        for (int which = 0; which < 3; ++which) {
            CAPTURE(name);
            CAPTURE(which);
            ImageMetadata one;
            (which == 0 ? one.exif : which == 1 ? one.icc : one.xmp) = which == 0 ? meta.exif : "a small one";
            CHECK(save_image(tmp / name, img, 8, one) == "");
            const ImageMetadata back = read_metadata(tmp / name);
            CHECK(back.exif == one.exif);
            CHECK(back.icc == one.icc);
            CHECK(back.xmp == one.xmp);
        }
    }
}

TEST_CASE("metadata: what a format cannot hold is reported, not an error") {
    TempDir tmp("metadata");
    const Tensor img = test_image(5, 6);
    ImageMetadata meta{read_bytes(fixture("metadata.exif")), "profile", "<x/>"};
    CHECK(save_image(tmp / "a.bmp", img, 8, meta) ==
          "the Exif block, the colour profile and the XMP packet (.bmp files store none)");
    CHECK(save_image(tmp / "a.npy", img, 8, ImageMetadata{"", "p", ""}) == "the colour profile (.npy files store none)");
    CHECK(save_image(tmp / "b.npy", img, 8, ImageMetadata{"e", "", "x"}) ==
          "the Exif block and the XMP packet (.npy files store none)");
    CHECK(fs::exists(tmp / "a.bmp"));
    CHECK(fs::exists(tmp / "a.npy"));
    // An Exif block and an XMP packet past one JPEG segment: the JPEG drops them, a PNG keeps them.
    ImageMetadata big{std::string(70000, 'x'), "profile", std::string(65505, 'y')};
    CHECK(save_image(tmp / "big.jpg", img, 8, big) ==
          "the Exif block (70000 bytes; a JPEG segment holds 65,527) and the XMP packet (65505 bytes; a JPEG "
          "segment holds 65,504)");
    CHECK(read_metadata(tmp / "big.jpg").exif.empty());
    CHECK(read_metadata(tmp / "big.jpg").xmp.empty());
    CHECK(read_metadata(tmp / "big.jpg").icc == "profile");
    CHECK(save_image(tmp / "big.png", img, 8, big) == "");
    CHECK(read_metadata(tmp / "big.png").exif == big.exif);
    CHECK(read_metadata(tmp / "big.png").xmp == big.xmp);
    // The largest that fit.
    ImageMetadata edge{std::string(65527, 'x'), "", std::string(65504, 'y')};
    CHECK(save_image(tmp / "edge.jpg", img, 8, edge) == "");
    CHECK(read_metadata(tmp / "edge.jpg").exif == edge.exif);
    CHECK(read_metadata(tmp / "edge.jpg").xmp == edge.xmp);
}

TEST_CASE("metadata: a profile of another colour space than the written samples is left out, and said") {
    TempDir tmp("metadata");
    auto profile = [](const char* space) {  // an ICC header's colour space field: bytes 16-19
        std::string p(200, 'p');
        p.replace(16, 4, space);
        return p;
    };
    const Tensor rgb = test_image(6, 7), grey = rgb.narrow(1, 0, 1).contiguous();
    const ImageMetadata gray{"", profile("GRAY"), ""}, cmyk{"", profile("CMYK"), ""}, srgb{"", profile("RGB "), ""};
    // Grey samples with a grey profile: kept (PNG); a JPEG holds 3 channels (YCbCr), so not there.
    CHECK(save_image(tmp / "g.png", grey, 8, gray) == "");
    CHECK(read_metadata(tmp / "g.png").icc == gray.icc);
    CHECK(save_image(tmp / "g.jpg", grey, 8, gray) == "the colour profile (it describes GRAY samples; these are RGB)");
    CHECK(read_metadata(tmp / "g.jpg").icc.empty());
    CHECK(save_image(tmp / "c.png", rgb, 8, cmyk) == "the colour profile (it describes CMYK samples; these are RGB)");
    CHECK(save_image(tmp / "r.png", grey, 16, srgb) == "the colour profile (it describes RGB samples; these are grey)");
    CHECK(save_image(tmp / "r.jpg", rgb, 8, srgb) == "");
    CHECK(read_metadata(tmp / "r.jpg").icc == srgb.icc);
}

TEST_CASE("metadata: a PNG eXIf chunk that keeps JPEG's \"Exif\\0\\0\" reads as the bare block") {
    TempDir tmp("metadata");
    const std::string exif = read_bytes(fixture("metadata.exif"));
    CHECK(save_image(tmp / "a.png", test_image(4, 5), 8, ImageMetadata{std::string("Exif\0\0", 6) + exif, "", ""}) == "");
    CHECK(read_metadata(tmp / "a.png").exif == exif);
}

TEST_CASE("metadata: malformed or truncated metadata is left out, the image still loads") {
    TempDir tmp("metadata");
    const std::string jpg = read_bytes(fixture("metadata.jpg")), png = read_bytes(fixture("metadata.png"));
    const std::string exif = read_bytes(fixture("metadata.exif"));

    SUBCASE("a JPEG missing one of its two profile segments") {
        const size_t second = jpg.find("ICC_PROFILE\0\2\2", 0, 14);
        REQUIRE(second != std::string::npos);
        const size_t start = second - 4;  // FF E2 and the length
        const size_t len = (size_t)((unsigned char)jpg[start + 2] << 8 | (unsigned char)jpg[start + 3]);
        write_bytes(tmp / "a.jpg", jpg.substr(0, start) + jpg.substr(start + 2 + len));
        const ImageMetadata m = read_metadata(tmp / "a.jpg");
        CHECK(m.icc.empty());
        CHECK(m.exif == exif);
        CHECK(m.xmp == read_bytes(fixture("metadata.xmp")));
        CHECK(load_image(tmp / "a.jpg").shape() == Shape({1, 3, 12, 20}));
    }
    SUBCASE("a PNG whose iCCP stream is corrupt") {
        std::string bad = png;
        const size_t at = bad.find("iCCP");
        REQUIRE(at != std::string::npos);
        const size_t z = bad.find('\0', at + 4) + 2;  // past the profile name and the method
        for (size_t i = z + 2; i < z + 40; ++i) bad[i] = (char)0xFF;
        write_bytes(tmp / "a.png", bad);
        const ImageMetadata m = read_metadata(tmp / "a.png");
        CHECK(m.icc.empty());
        CHECK(m.exif == exif);
    }
    SUBCASE("files cut short anywhere: no crash, no exception") {
        for (const std::string* file : {&jpg, &png})
            for (size_t n : {0, 1, 2, 3, 5, 9, 20, 33, 40, 100, 1000, 30000, 66000, 70500})
                if (n < file->size()) {
                    const std::string path = tmp / (file == &jpg ? "cut.jpg" : "cut.png");
                    write_bytes(path, file->substr(0, n));
                    CAPTURE(path);
                    CAPTURE(n);
                    ImageMetadata m;
                    CHECK_NOTHROW(m = read_metadata(path));
                    CHECK((m.exif.empty() || m.exif == exif));
                    CHECK((m.icc.empty() || m.icc == fixture_icc()));
                    CHECK((m.xmp.empty() || m.xmp == read_bytes(fixture("metadata.xmp"))));
                }
    }
}
