// File formats: JSON, safetensors, images, npy. Round trips must be exact, and every corrupt or
// missing file must give an ams::Error that names the file (never a crash).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>

#include "engine/image_io.h"
#include "engine/json.h"
#include "engine/npy.h"
#include "engine/safetensors.h"
#include "files.h"
#include "stb_image_write.h"  // declarations only: writes grey/alpha PNGs that save_image cannot

namespace fs = std::filesystem;
using namespace ams;
using ams::test::read_bytes;
using ams::test::TempDir;
using ams::test::write_bytes;

namespace {

// A safetensors file from a header text and data bytes.
std::string make_safetensors(const std::string& header, const std::string& data) {
    uint64_t n = header.size();
    std::string out(reinterpret_cast<const char*>(&n), 8);
    return out + header + data;
}

// The message of the ams::Error that f throws ("" when it throws none).
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const ams::Error& e) {
        return e.what();
    }
    return "";
}

// f must throw ams::Error whose message contains needle (normally the file name).
#define CHECK_ERROR_NAMES(expr, needle)                                    \
    do {                                                                   \
        CHECK_THROWS_AS(expr, ams::Error);                                 \
        const std::string msg_ = error_of([&] { expr; });                  \
        INFO("message: ", msg_);                                           \
        CHECK(msg_.find(needle) != std::string::npos);                     \
    } while (0)

Tensor random_tensor(const Shape& shape, uint32_t seed, DType dtype = DType::F32) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> u(-2, 2);
    std::vector<double> v((size_t)shape_numel(shape));
    for (double& x : v) x = u(rng);
    return Tensor::from_vector(v, shape).to(dtype);
}

// Raw bytes of a contiguous CPU copy, for exact comparison of any dtype.
std::string bytes_of(const Tensor& t) {
    Tensor c = t.to(Device::CPU).contiguous();
    return std::string(static_cast<const char*>(c.raw_data()), c.nbytes());
}

// An image whose values lie exactly on the levels of a bits-deep file.
Tensor quantised_image(int h, int w, int bits, uint32_t seed) {
    std::mt19937 rng(seed);
    const int maxv = bits == 16 ? 65535 : 255;
    std::uniform_int_distribution<int> u(0, maxv);
    std::vector<float> v((size_t)3 * h * w);
    for (float& x : v) x = (float)u(rng) / (float)maxv;
    return Tensor::from_vector(v, {1, 3, h, w});
}

}  // namespace

// ---------------------------------------------------------------- JSON

TEST_CASE("json: parse, accessors, dump round trip with escapes and unicode") {
    const std::string text = R"({"name": "a\"b\\c\/d\b\f\n\r\t", "e": "\u00e9\u4e2d\ud83d\ude00",
        "int": 42, "neg": -7, "big": 12345678901234, "frac": 0.1, "exp": 1.5e3, "tiny": 1e-400,
        "ok": true, "no": false, "nothing": null, "list": [1, [2, {}], []], "obj": {"z": 1, "a": 2}})";
    json::Value v = json::parse(text);
    CHECK(v.is_object());
    CHECK(v.at("name").as_string() == "a\"b\\c/d\b\f\n\r\t");
    CHECK(v.at("e").as_string() == "\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80");  // é, 中, 😀 in UTF-8
    CHECK(v.at("int").as_int() == 42);
    CHECK(v.at("neg").as_int() == -7);
    CHECK(v.at("big").as_int() == 12345678901234LL);
    CHECK(v.at("frac").as_number() == 0.1);
    CHECK(v.at("exp").as_number() == 1500.0);
    CHECK(v.at("tiny").as_number() == 0.0);
    CHECK(v.at("ok").as_bool());
    CHECK_FALSE(v.at("no").as_bool());
    CHECK(v.at("nothing").is_null());
    CHECK(v.at("list").size() == 3);
    CHECK(v.at("list").at(1).at(0).as_int() == 2);
    CHECK(v.find("absent") == nullptr);
    // Insertion order is kept.
    CHECK(v.at("obj").as_object()[0].first == "z");

    // dump -> parse gives the same value, compact and indented.
    for (int indent : {-1, 0, 2}) {
        std::string d = json::dump(v, indent);
        CHECK(json::parse(d) == v);
        CHECK(json::dump(json::parse(d), indent) == d);
    }
    const std::string compact = json::dump(v);
    CHECK(compact.find("\"int\":42,") != std::string::npos);         // integers have no decimal point
    CHECK(compact.find("\"big\":12345678901234,") != std::string::npos);
    CHECK(compact.find("\"frac\":0.1,") != std::string::npos);  // shortest form that reads back exactly
    json::Value third(0.1 + 0.2);                                   // needs all 17 digits
    CHECK(json::dump(third) == "0.30000000000000004");
    CHECK(json::parse(json::dump(third)).as_number() == 0.1 + 0.2);
    CHECK(compact.find("\\\"b\\\\c/d\\b\\f\\n\\r\\t") != std::string::npos);

    json::Value c;  // null: operator[] turns it into an object
    c["b"] = 1;
    c["a"] = "x";
    c["b"] = 2.5;  // overwrite keeps the position
    c["list"].push_back(true);
    c["list"].push_back(json::Value());
    c["ctrl"] = std::string("\x01");
    c["inf"] = INFINITY;
    CHECK(json::dump(c) == R"({"b":2.5,"a":"x","list":[true,null],"ctrl":"\u0001","inf":null})");
    CHECK(json::dump(json::Value::array()) == "[]");
    CHECK(json::dump(json::Value(int64_t(1) << 40)) == "1099511627776");
    CHECK(json::dump(json::Value(1e20)) == "1e+20");  // beyond 2^53: %.17g
    CHECK(json::dump(json::Value(-0.5)) == "-0.5");

    // Bytes that are not UTF-8 (a Latin-1 file name) become U+FFFD, so the text stays JSON; what
    // Python's bytes.decode("utf-8", "replace") gives for each (overlong, surrogate, > U+10FFFF).
    const std::string r = "\xEF\xBF\xBD";
    for (const auto& [in, out] : std::vector<std::pair<std::string, std::string>>{
             {"lat\xE9.png", "lat" + r + ".png"},
             {"\xC0\xAF", r + r},
             {"\xED\xA0\x80", r + r + r},
             {"\xF4\x90\x80\x80", r + r + r + r},
             {"\xF5\xA1\xB0", r + r + r},      // never a lead byte
             {"\xE2\x82\x41", r + "A"},        // a truncated sequence is one U+FFFD
             {"x\xE4\xB8", "x" + r},
             {"\xF0\x9F\x98", r},
             {"\xE0\x80\x80", r + r + r},      // overlong: E0 needs A0..BF next
             {"\xC3\xA9\xE4\xB8\xAD", "\xC3\xA9\xE4\xB8\xAD"},
             {"\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80"}}) {
        CHECK(json::dump(json::Value(in)) == "\"" + out + "\"");
        CHECK(json::parse(json::dump(json::Value(in))).as_string() == out);
    }
}

TEST_CASE("json: errors name the source, the byte offset and the key") {
    for (const char* bad : {"", "{", "{\"a\":}", "[1,]", "[1 2]", "{\"a\":1,}", "\"abc", "tru", "01",
                            "1.", "-", "1e", "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "\"a\nb\"",
                            "{\"a\":1,\"a\":2}", "1 2", "1e999", "{1:2}"}) {
        INFO("input: ", bad);
        CHECK_ERROR_NAMES(json::parse(bad, "cfg.json"), "cfg.json");
        CHECK_ERROR_NAMES(json::parse(bad, "cfg.json"), "byte");
    }
    std::string deep(100000, '[');
    CHECK_THROWS_AS(json::parse(deep), ams::Error);  // bounded depth, no stack overflow

    json::Value v = json::parse(R"({"n": 1.5, "s": "x", "big": 1e300})");
    CHECK_ERROR_NAMES(v.at("missing_key"), "missing_key");
    CHECK_THROWS_AS(v.at("n").as_int(), ams::Error);
    CHECK_THROWS_AS(v.at("big").as_int(), ams::Error);
    CHECK_THROWS_AS(v.at("s").as_number(), ams::Error);
    CHECK_THROWS_AS(v.at("n").as_string(), ams::Error);
    CHECK_THROWS_AS(v.at("s").at(0), ams::Error);
}

// ---------------------------------------------------------------- safetensors

TEST_CASE("safetensors: round trip of all dtypes, metadata, scalars and views") {
    TempDir tmp("st");
    const std::string path = tmp / "model.safetensors";
    Tensor base = random_tensor({4, 5}, 1);
    Tensor view = base.narrow(1, 1, 3);  // non-contiguous
    REQUIRE_FALSE(view.is_contiguous());
    std::vector<std::pair<std::string, Tensor>> in = {
        {"conv.weight", random_tensor({2, 3, 3, 3}, 2)},
        {"f64", random_tensor({7}, 3, DType::F64)},
        {"half", random_tensor({3, 2}, 4, DType::F16)},
        {"bf16", random_tensor({5}, 5, DType::BF16)},
        {"scalar", Tensor::full({}, 3.25)},
        {"empty", Tensor::zeros({0, 3})},
        {"view", view},
    };
    std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "h\xC3\xA9llo \"quoted\"\n"}};
    save_safetensors(path, in, meta);
    CHECK_FALSE(fs::exists(path + ".tmp"));

    // Header length is a multiple of 8, as the reference writer pads it.
    const std::string bytes = read_bytes(path);
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    CHECK(n % 8 == 0);
    CHECK(json::parse(bytes.substr(8, n)).as_object()[0].first == "__metadata__");

    SafetensorsFile f = load_safetensors(path);
    CHECK(f.path == path);
    CHECK(f.metadata == meta);
    SafetensorsFile header_only = load_safetensors(path, false);  // metadata without the weights
    CHECK(header_only.metadata == meta);
    CHECK(header_only.tensors.empty());
    REQUIRE(f.tensors.size() == in.size());
    for (size_t k = 0; k < in.size(); ++k) {
        INFO("tensor ", in[k].first);
        CHECK(f.tensors[k].first == in[k].first);  // header order is kept
        const Tensor& t = f.tensors[k].second;
        CHECK(t.device() == Device::CPU);
        CHECK(t.dtype() == in[k].second.dtype());
        CHECK(t.shape() == in[k].second.shape());
        CHECK(bytes_of(t) == bytes_of(in[k].second));  // bit-exact
    }
    CHECK(f.has("half"));
    CHECK_FALSE(f.has("nope"));
    CHECK(f.get("scalar").item() == 3.25);
    CHECK(f.get("view").to_vector() == view.to_vector());
    CHECK_ERROR_NAMES(f.get("nope"), "model.safetensors");
    CHECK_ERROR_NAMES(f.get("nope"), "nope");

    // Saving again over the file replaces it (no metadata this time).
    save_safetensors(path, {{"x", Tensor::full({2}, 1.0)}});
    SafetensorsFile g = load_safetensors(path);
    CHECK(g.metadata.empty());
    CHECK(g.tensors.size() == 1);
}

TEST_CASE("safetensors: writer errors name the path and leave nothing behind") {
    TempDir tmp("stw");
    const std::string path = tmp / "dup.safetensors";
    CHECK_ERROR_NAMES(save_safetensors(path, {{"a", Tensor::zeros({1})}, {"a", Tensor::zeros({2})}}), "dup.safetensors");
    CHECK_ERROR_NAMES(save_safetensors(path, {{"a", Tensor::zeros({1})}, {"a", Tensor::zeros({2})}}), "'a'");
    CHECK_ERROR_NAMES(save_safetensors(path, {{"a", Tensor()}}), "dup.safetensors");
    CHECK_FALSE(fs::exists(path));
    const std::string nodir = tmp / "no/such/dir/x.safetensors";
    CHECK_ERROR_NAMES(save_safetensors(nodir, {{"a", Tensor::zeros({1})}}), "x.safetensors");
    CHECK_FALSE(fs::exists(nodir));
}

TEST_CASE("safetensors: truncated and corrupt files give errors naming the file") {
    TempDir tmp("stbad");
    const std::string good = tmp / "good.safetensors";
    save_safetensors(good, {{"w", random_tensor({3, 4}, 7)}, {"b", random_tensor({4}, 8, DType::F16)}},
                     {{"k", "v"}});
    const std::string bytes = read_bytes(good);
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);

    // Cut at every interesting position: inside the length, inside the header, inside the data.
    const std::string cut = tmp / "cut.safetensors";
    for (size_t len : {size_t(0), size_t(1), size_t(7), size_t(8), size_t(9), size_t(8 + n / 2),
                       size_t(8 + n - 1), size_t(8 + n), size_t(8 + n + 1), bytes.size() - 1}) {
        INFO("cut at ", len, " of ", bytes.size());
        write_bytes(cut, bytes.substr(0, len));
        CHECK_ERROR_NAMES(load_safetensors(cut), "cut.safetensors");
    }

    const std::string bad = tmp / "bad.safetensors";
    auto check_bad = [&](const std::string& file_bytes, const std::string& also) {
        write_bytes(bad, file_bytes);
        CHECK_ERROR_NAMES(load_safetensors(bad), "bad.safetensors");
        CHECK_ERROR_NAMES(load_safetensors(bad), also);
    };
    const std::string data8(8, '\0');
    check_bad(make_safetensors("not json!", data8), "JSON");
    check_bad(make_safetensors("[1, 2, 3]", data8), "not an object");
    {
        std::string huge(8, '\0');
        uint64_t len = 1ull << 40;
        std::memcpy(huge.data(), &len, 8);
        check_bad(huge + "{}", "100 MB");
        len = 1000;  // under the limit but past the end
        std::memcpy(huge.data(), &len, 8);
        check_bad(huge + "{}", "past the end");
    }
    check_bad(make_safetensors(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,100]}})", data8), "outside");
    check_bad(make_safetensors(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", data8), "needs 8");
    check_bad(make_safetensors(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[4,0]}})", data8), "outside");
    check_bad(make_safetensors(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", data8), "outside");
    check_bad(make_safetensors(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", data8), "data_offsets");
    check_bad(make_safetensors(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data8), "negative");
    check_bad(make_safetensors(R"({"w":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", data8), "I32");
    check_bad(make_safetensors(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", data8), "integer");
    check_bad(make_safetensors(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})", data8), "too large");
    check_bad(make_safetensors(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", data8), "dtype");
    check_bad(make_safetensors(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                               R"("v":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", data8), "overlap");
    check_bad(make_safetensors(R"({"__metadata__":{"k":1}})", data8), "__metadata__");

    CHECK_ERROR_NAMES(load_safetensors(tmp / "missing.safetensors"), "missing.safetensors");
    CHECK_ERROR_NAMES(load_safetensors(tmp.dir.string()), tmp.dir.string());

    // A valid hand-written file with a scalar and an empty tensor loads.
    float x = 1.5f;
    std::string d(reinterpret_cast<const char*>(&x), 4);
    write_bytes(bad, make_safetensors(R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
                                      R"("e":{"dtype":"F64","shape":[0,5],"data_offsets":[4,4]}})", d));
    SafetensorsFile f = load_safetensors(bad);
    CHECK(f.get("s").item() == 1.5);
    CHECK(f.get("e").numel() == 0);
}

// ---------------------------------------------------------------- images

TEST_CASE("images: 8-bit PNG and BMP round trips are exact after quantisation") {
    TempDir tmp("img8");
    Tensor img = quantised_image(17, 23, 8, 11);
    for (const char* name : {"a.png", "b.PNG", "c.bmp"}) {
        INFO(name);
        const std::string path = tmp / name;
        save_image(path, img);
        CHECK_FALSE(fs::exists(path + ".tmp"));
        Tensor back = load_image(path);
        CHECK(back.shape() == Shape{1, 3, 17, 23});
        CHECK(back.dtype() == DType::F32);
        CHECK(back.to_vector() == img.to_vector());
    }
    // A (3, H, W) tensor and out-of-range values (clamped; NaN becomes 0).
    std::vector<float> v = {-1.f, 0.f, 0.5f, 1.f, 2.f, NAN};
    save_image(tmp / "c.png", Tensor::from_vector(v, {3, 1, 2}));
    std::vector<float> back = load_image(tmp / "c.png").to_vector();
    std::vector<float> want = {0.f, 0.f, 128 / 255.f, 1.f, 1.f, 0.f};
    CHECK(back == want);
}

TEST_CASE("images: 16-bit PNG round trip is exact to 1/65535") {
    TempDir tmp("img16");
    Tensor img = quantised_image(9, 31, 16, 12);
    const std::string path = tmp / "deep.png";
    save_image(path, img, 16);
    const std::string bytes = read_bytes(path);
    REQUIRE(bytes.size() > 33);
    CHECK(bytes.substr(1, 3) == "PNG");
    CHECK((unsigned char)bytes[24] == 16);  // IHDR bit depth
    CHECK((unsigned char)bytes[25] == 2);   // colour type RGB
    Tensor back = load_image(path);
    CHECK(back.shape() == Shape{1, 3, 9, 31});
    std::vector<float> a = img.to_vector(), b = back.to_vector();
    REQUIRE(a.size() == b.size());
    float worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
    CHECK(worst <= 0.5f / 65535.f);
    // Values between 8-bit levels survive, which 8-bit output would lose.
    save_image(path, Tensor::full({1, 3, 1, 1}, 1000.0 / 65535.0), 16);
    CHECK(std::lround(load_image(path).to_vector()[0] * 65535.0) == 1000);
}

TEST_CASE("images: JPEG has the right size and close values") {
    TempDir tmp("jpg");
    // A smooth image compresses with small error.
    std::vector<float> v(3 * 40 * 56);
    for (int c = 0; c < 3; ++c)
        for (int y = 0; y < 40; ++y)
            for (int x = 0; x < 56; ++x) v[(c * 40 + y) * 56 + x] = 0.2f + 0.6f * (float)(x + y + 10 * c) / 116.f;
    Tensor img = Tensor::from_vector(v, {1, 3, 40, 56});
    for (const char* name : {"p.jpg", "q.JPEG"}) {
        save_image(tmp / name, img);
        Tensor back = load_image(tmp / name);
        CHECK(back.shape() == Shape{1, 3, 40, 56});
        std::vector<float> b = back.to_vector();
        double err = 0;
        for (size_t i = 0; i < v.size(); ++i) err += std::fabs(v[i] - b[i]);
        CHECK(err / (double)v.size() < 0.02);
    }
}

TEST_CASE("images: grey and alpha inputs become 3 channels") {
    TempDir tmp("grey");
    const int w = 4, h = 3;
    unsigned char grey[w * h], ga[w * h * 2], rgba[w * h * 4];
    for (int i = 0; i < w * h; ++i) {
        grey[i] = (unsigned char)(i * 20);
        ga[2 * i] = (unsigned char)(i * 20);
        ga[2 * i + 1] = 7;
        for (int c = 0; c < 4; ++c) rgba[4 * i + c] = (unsigned char)(i * 20 + c);
    }
    REQUIRE(stbi_write_png((tmp / "g.png").c_str(), w, h, 1, grey, w));
    REQUIRE(stbi_write_png((tmp / "ga.png").c_str(), w, h, 2, ga, w * 2));
    REQUIRE(stbi_write_png((tmp / "rgba.png").c_str(), w, h, 4, rgba, w * 4));
    for (const char* name : {"g.png", "ga.png"}) {
        Tensor t = load_image(tmp / name);
        REQUIRE(t.shape() == Shape{1, 3, h, w});
        std::vector<float> v = t.to_vector();
        for (int c = 0; c < 3; ++c)
            for (int i = 0; i < w * h; ++i) CHECK(v[c * w * h + i] == (float)(i * 20) / 255.f);
    }
    std::vector<float> v = load_image(tmp / "rgba.png").to_vector();
    CHECK(v.size() == (size_t)3 * w * h);
    for (int c = 0; c < 3; ++c)
        for (int i = 0; i < w * h; ++i) CHECK(v[c * w * h + i] == (float)(i * 20 + c) / 255.f);

    // The extras record what was set aside; restore_file_channels gives the file's form back.
    const std::pair<const char*, int> files[] = {{"g.png", 1}, {"ga.png", 2}, {"rgba.png", 4}};
    for (const auto& [name, n] : files) {
        INFO(name);
        ImageExtras ex;
        Tensor t = load_image(tmp / name, &ex);
        CHECK(ex.channels == n);
        CHECK(ex.alpha.defined() == (n == 2 || n == 4));
        Tensor back = restore_file_channels(t, ex);
        REQUIRE(back.shape() == Shape{1, n == 1 ? 1 : n == 2 ? 2 : 4, h, w});
        std::vector<float> b = back.to_vector();
        for (int i = 0; i < w * h; ++i) {
            for (int c = 0; c < (n <= 2 ? 1 : 3); ++c) CHECK(b[c * w * h + i] == doctest::Approx((float)(i * 20 + (n == 4 ? c : 0)) / 255.f));
            if (n == 2) CHECK(b[w * h + i] == 7.f / 255.f);
            if (n == 4) CHECK(b[3 * w * h + i] == (float)(i * 20 + 3) / 255.f);
        }
    }
    ImageExtras rgb;
    Tensor t = load_image(tmp / "rgba.png");
    CHECK(restore_file_channels(t, rgb).shape() == Shape{1, 3, h, w});
}

TEST_CASE("images: grey, grey + alpha and RGBA tensors save as such (8-bit PNG and BMP, 16-bit PNG)") {
    TempDir tmp("channels");
    const int h = 5, w = 7;
    for (int n : {1, 2, 4})
        for (const char* ext : {".png", ".bmp", ".png16"}) {
            const bool deep = std::string(ext) == ".png16";
            if (n <= 2 && std::string(ext) == ".bmp") continue;  // BMP stores grey as RGB
            INFO(n, " channels, ", std::string(ext));
            const int bits = deep ? 16 : 8;
            std::mt19937 rng(n * 31 + bits);
            std::uniform_int_distribution<int> u(0, deep ? 65535 : 255);
            std::vector<float> v((size_t)n * h * w);
            for (float& x : v) x = (float)u(rng) / (deep ? 65535.f : 255.f);
            const std::string path = tmp / (std::string("c") + std::to_string(n) + (deep ? ".png" : ext));
            save_image(path, Tensor::from_vector(v, {1, n, h, w}), bits);
            if (deep) CHECK((unsigned char)read_bytes(path)[25] == (n == 1 ? 0 : n == 2 ? 4 : 6));  // PNG colour type
            ImageExtras ex;
            Tensor back = restore_file_channels(load_image(path, &ex), ex);
            CHECK(ex.channels == n);
            REQUIRE(back.shape() == Shape{1, n, h, w});
            std::vector<float> b = back.to_vector();
            double worst = 0;
            for (size_t i = 0; i < v.size(); ++i) worst = std::max(worst, (double)std::fabs(b[i] - v[i]));
            CHECK(worst <= (deep ? 0.6 / 65535.0 : 1e-6));
        }
    CHECK_THROWS_WITH_AS(save_image(tmp / "five.png", Tensor::zeros({1, 5, 2, 2})), doctest::Contains("C = 1 to 4"), Error);
    // BMP writes grey as RGB: it loads back as 3 equal channels.
    save_image(tmp / "g.bmp", Tensor::full({1, 1, 2, 3}, 0.4));
    ImageExtras ex;
    CHECK(load_image(tmp / "g.bmp", &ex).to_vector() == std::vector<float>(18, 102.f / 255.f));
    CHECK(ex.channels == 3);
}

TEST_CASE("images: bad files and bad arguments give errors naming the file") {
    TempDir tmp("imgbad");
    write_bytes(tmp / "fake.png", "this is not an image at all");
    CHECK_ERROR_NAMES(load_image(tmp / "fake.png"), "fake.png");
    write_bytes(tmp / "empty.jpg", "");
    CHECK_ERROR_NAMES(load_image(tmp / "empty.jpg"), "empty.jpg");
    CHECK_ERROR_NAMES(load_image(tmp / "missing.png"), "missing.png");
    CHECK_ERROR_NAMES(load_image(tmp / "missing.png"), "no such file");

    // A PNG cut short: still an error, never a crash.
    save_image(tmp / "ok.png", quantised_image(16, 16, 8, 3));
    const std::string png = read_bytes(tmp / "ok.png");
    for (size_t len : {size_t(8), size_t(30), png.size() / 2, png.size() - 13}) {
        write_bytes(tmp / "cut.png", png.substr(0, len));
        CHECK_ERROR_NAMES(load_image(tmp / "cut.png"), "cut.png");
    }

    Tensor img = quantised_image(4, 4, 8, 4);
    CHECK_ERROR_NAMES(save_image(tmp / "x.tiff", img), "x.tiff");
    CHECK_ERROR_NAMES(save_image(tmp / "x.tiff", img), ".png");
    CHECK_ERROR_NAMES(save_image(tmp / "x.jpg", img, 16), "x.jpg");
    CHECK_ERROR_NAMES(save_image(tmp / "x.png", img, 12), "x.png");
    CHECK_ERROR_NAMES(save_image(tmp / "x.png", Tensor::zeros({1, 5, 4, 4})), "x.png");
    CHECK_ERROR_NAMES(save_image(tmp / "x.png", Tensor::zeros({4, 4})), "x.png");
    CHECK_ERROR_NAMES(save_image(tmp / "x.png", Tensor::zeros({2, 3, 4, 4})), "x.png");
    CHECK_ERROR_NAMES(save_image(tmp / "no/dir/x.png", img), "x.png");
    CHECK_FALSE(fs::exists(tmp / "x.png"));
    CHECK_FALSE(fs::exists(tmp / "x.jpg"));

    CHECK(is_image_path("a/b.PNG"));
    CHECK(is_image_path("x.jpeg"));
    CHECK(is_image_path("x.JPG"));
    CHECK(is_image_path("x.bmp"));
    CHECK(is_image_path("x.NPY"));
    CHECK_FALSE(is_image_path("png"));
    CHECK_FALSE(is_image_path("dir.png/file"));
}

TEST_CASE("images: .npy float arrays load like the image file with the same values; save_image writes them unclipped") {
    TempDir tmp("npyimg");
    const int w = 5, h = 3;
    // The same pixels as an RGBA PNG and as (H, W, 4) float32 and grey (H, W) float64 arrays of
    // byte / 255, built here sample by sample.
    unsigned char rgba[w * h * 4], grey[w * h];
    std::vector<double> hwc4(w * h * 4), hw(w * h);
    for (int i = 0; i < w * h * 4; ++i) rgba[i] = (unsigned char)(i * 13 % 256), hwc4[i] = (float)rgba[i] / 255.f;
    for (int i = 0; i < w * h; ++i) grey[i] = (unsigned char)(i * 17), hw[i] = (float)grey[i] / 255.f;
    REQUIRE(stbi_write_png((tmp / "rgba.png").c_str(), w, h, 4, rgba, w * 4));
    REQUIRE(stbi_write_png((tmp / "g.png").c_str(), w, h, 1, grey, w));
    save_npy(tmp / "rgba.npy", Tensor::from_vector(hwc4, {h, w, 4}).to(DType::F32));
    save_npy(tmp / "g.npy", Tensor::from_vector(hw, {h, w}).to(DType::F64));
    for (const char* name : {"rgba", "g"}) {
        INFO(name);
        ImageExtras from_png, from_npy;
        Tensor a = load_image(tmp / (std::string(name) + ".png"), &from_png);
        Tensor b = load_image(tmp / (std::string(name) + ".npy"), &from_npy);
        CHECK(b.shape() == Shape{1, 3, h, w});
        CHECK(b.to_vector() == a.to_vector());
        CHECK(from_npy.channels == from_png.channels);
        REQUIRE(from_npy.alpha.defined() == from_png.alpha.defined());
        if (from_png.alpha.defined()) CHECK(from_npy.alpha.to_vector() == from_png.alpha.to_vector());
    }

    // save_image(.npy) keeps every value (no clamping, no levels), in (H, W, C) order, for 1 to 4
    // channels; the result loads back as what was saved.
    for (int n = 1; n <= 4; ++n) {
        INFO("channels ", n);
        Tensor img = random_tensor({1, n, h, w}, 40 + n);  // values in [-2, 2]
        save_image(tmp / "out.npy", img, 16);
        Tensor raw = load_npy(tmp / "out.npy");
        REQUIRE(raw.shape() == Shape{h, w, n});
        std::vector<float> r = raw.to_vector(), v = img.to_vector();
        for (int c = 0; c < n; ++c)
            for (int i = 0; i < h * w; ++i) CHECK(r[i * n + c] == v[c * h * w + i]);
        ImageExtras ex;
        Tensor back = restore_file_channels(load_image(tmp / "out.npy", &ex), ex);
        REQUIRE(back.shape() == img.shape());
        std::vector<float> b = back.to_vector();
        // Grey comes back as the mean of its 3 copies: equal to rounding.
        for (size_t i = 0; i < v.size(); ++i) CHECK(b[i] == doctest::Approx(v[i]).epsilon(1e-6));
    }

    // Arrays that are not images, and values the network cannot take, are refused by name.
    save_npy(tmp / "cube.npy", Tensor::zeros({3, 4, 5}));
    CHECK_ERROR_NAMES(load_image(tmp / "cube.npy"), "cube.npy");
    CHECK_ERROR_NAMES(load_image(tmp / "cube.npy"), "(H, W, C)");
    save_npy(tmp / "flat.npy", Tensor::zeros({6}));
    CHECK_ERROR_NAMES(load_image(tmp / "flat.npy"), "(6)");
    save_npy(tmp / "empty.npy", Tensor::zeros({0, 4, 3}));
    CHECK_ERROR_NAMES(load_image(tmp / "empty.npy"), "empty.npy");
    std::vector<double> bad(w * h * 3, 0.5);
    bad[(2 * w + 4) * 3 + 1] = std::numeric_limits<double>::infinity();
    save_npy(tmp / "inf.npy", Tensor::from_vector(bad, {h, w, 3}).to(DType::F64));
    CHECK_ERROR_NAMES(load_image(tmp / "inf.npy"), "inf.npy");
    CHECK_ERROR_NAMES(load_image(tmp / "inf.npy"), "row 2, column 4, channel 1");
    bad[(2 * w + 4) * 3 + 1] = 1e300;  // finite, but not as a float32
    save_npy(tmp / "big.npy", Tensor::from_vector(bad, {h, w, 3}).to(DType::F64));
    CHECK_ERROR_NAMES(load_image(tmp / "big.npy"), "beyond float32's range (1e+300)");
    write_bytes(tmp / "x.tif", "II*");
    CHECK_ERROR_NAMES(list_images(tmp / "x.tif"), "x.tif");
    CHECK_ERROR_NAMES(list_images(tmp / "x.tif"), "is not a PNG, JPEG, BMP or .npy image");
    CHECK(list_images(tmp.dir.string(), "rgba") == std::vector<std::string>{tmp / "rgba.npy", tmp / "rgba.png"});
    CHECK(list_images(tmp.dir.string(), "x.") == std::vector<std::string>{});  // x.tif is no image
}

TEST_CASE("images: folders are listed through links, but a link back (a loop, or to a parent) is not followed") {
    TempDir tmp("links");
    const Tensor img = Tensor::zeros({1, 3, 4, 4});
    fs::create_directories(tmp.dir / "root" / "sub");
    fs::create_directories(tmp.dir / "elsewhere");
    save_image(tmp / "root/a.png", img);
    save_image(tmp / "root/sub/b.png", img);
    save_image(tmp / "elsewhere/c.png", img);
    save_image(tmp / "beside.png", img);
    fs::create_directory_symlink(".", tmp.dir / "root" / "self");
    fs::create_directory_symlink("..", tmp.dir / "root" / "up");
    fs::create_directory_symlink("../../root", tmp.dir / "root" / "sub" / "back");
    fs::create_directory_symlink("../../elsewhere", tmp.dir / "root" / "sub" / "linked");
    fs::create_directory_symlink("sub", tmp.dir / "root" / "a_link_to_sub");  // listed as sub/, not through it
    CHECK(list_images(tmp / "root") ==
          std::vector<std::string>{tmp / "root/a.png", tmp / "root/sub/b.png", tmp / "root/sub/linked/c.png"});
}

TEST_CASE("images: a real PolyU photo loads as (1, 3, 512, 512) in [0, 1]") {
    const std::string path = AMS_SOURCE_DIR "/../shared/data/polyu/Canon5D2_5_160_3200_chair_11_real.JPG";
    if (!fs::exists(path)) {
        MESSAGE("skipped: ", path, " not present");
        return;
    }
    Tensor t = load_image(path);
    CHECK(t.shape() == Shape{1, 3, 512, 512});
    std::vector<float> v = t.to_vector();
    auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    CHECK(*lo >= 0.f);
    CHECK(*hi <= 1.f);
    CHECK(*hi - *lo > 0.2f);  // a real photo, not a flat image
}

// ---------------------------------------------------------------- npy

TEST_CASE("npy: f4 and f8 round trips, 64-byte aligned data") {
    TempDir tmp("npy");
    struct Case {
        const char* name;
        Tensor t;
        DType stored;
    };
    Tensor base = random_tensor({4, 6}, 21);
    std::vector<Case> cases = {
        {"f4.npy", random_tensor({2, 3, 4}, 20), DType::F32},
        {"f8.npy", random_tensor({5}, 22, DType::F64), DType::F64},
        {"scalar.npy", Tensor::full({}, -2.5, DType::F64), DType::F64},
        {"view.npy", base.narrow(1, 2, 3), DType::F32},
        {"half.npy", random_tensor({3, 3}, 23, DType::F16), DType::F32},
        {"empty.npy", Tensor::zeros({0, 2}), DType::F32},
    };
    for (const Case& c : cases) {
        INFO(c.name);
        const std::string path = tmp / c.name;
        save_npy(path, c.t);
        const std::string bytes = read_bytes(path);
        REQUIRE(bytes.size() >= 10);
        CHECK(bytes.substr(0, 8) == std::string("\x93NUMPY\x01\x00", 8));
        const size_t header_len = (unsigned char)bytes[8] | (size_t)(unsigned char)bytes[9] << 8;
        CHECK((10 + header_len) % 64 == 0);
        CHECK(bytes[10 + header_len - 1] == '\n');
        Tensor back = load_npy(path);
        CHECK(npy_shape(path) == c.t.shape());
        CHECK(back.dtype() == c.stored);
        CHECK(back.shape() == c.t.shape());
        CHECK(back.to_double() == c.t.to_double());
    }
    // The exact header NumPy writes for these shapes.
    std::string h = read_bytes(tmp / "f4.npy").substr(10);
    CHECK(h.rfind("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }", 0) == 0);
    CHECK(read_bytes(tmp / "f8.npy").find("'shape': (5,), }") != std::string::npos);
    CHECK(read_bytes(tmp / "scalar.npy").find("'shape': (), }") != std::string::npos);

    // Version 2.0 headers (4-byte length) and double-quoted keys load too.
    std::string hdr = "{\"descr\": \"<f8\", \"shape\": (2,), \"fortran_order\": False}\n";
    std::string v2 = std::string("\x93NUMPY\x02\x00", 8);
    uint32_t len = (uint32_t)hdr.size();
    v2.append(reinterpret_cast<const char*>(&len), 4);
    double d[2] = {1.25, -3.5};
    v2 += hdr + std::string(reinterpret_cast<const char*>(d), 16);
    write_bytes(tmp / "v2.npy", v2);
    CHECK(load_npy(tmp / "v2.npy").to_double() == std::vector<double>{1.25, -3.5});
}

TEST_CASE("npy: bad files give errors naming the file") {
    TempDir tmp("npybad");
    const std::string path = tmp / "bad.npy";
    auto with_header = [](const std::string& dict, size_t data_bytes) {
        std::string h = dict;
        h.append((64 - (10 + h.size() + 1) % 64) % 64, ' ');
        h += '\n';
        std::string out = std::string("\x93NUMPY\x01\x00", 8);
        out += (char)(h.size() & 0xFF);
        out += (char)(h.size() >> 8);
        return out + h + std::string(data_bytes, '\0');
    };
    auto check_bad = [&](const std::string& bytes, const std::string& also) {
        write_bytes(path, bytes);
        CHECK_ERROR_NAMES(load_npy(path), "bad.npy");
        CHECK_ERROR_NAMES(load_npy(path), also);
        CHECK_ERROR_NAMES(npy_shape(path), also);  // the header alone gets the same checks
    };
    check_bad("PK\x03\x04 this is a zip", "magic");
    check_bad("", "magic");
    check_bad(std::string("\x93NUMPY\x07\x00\x10\x00", 10), "version");
    check_bad(with_header("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", 8), "<i4");
    check_bad(with_header("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8), ">f4");
    check_bad(with_header("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16), "Fortran");
    check_bad(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 23), "truncated");
    check_bad(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", 24), "header");
    check_bad(with_header("{'descr': '<f4', 'shape': (2,), }", 8), "header");
    check_bad(with_header("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }", 8), "True or False");
    check_bad(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), ", 8), "header");
    // A truncated header length.
    std::string good = with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8);
    check_bad(good.substr(0, 40), "truncated");
    CHECK_ERROR_NAMES(load_npy(tmp / "missing.npy"), "missing.npy");
    CHECK_ERROR_NAMES(save_npy(tmp / "no/dir/x.npy", Tensor::zeros({2})), "x.npy");
}
