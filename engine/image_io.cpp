#include "engine/image_io.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <set>
#include <vector>

#include "engine/npy.h"
#include "engine/png_chunks.h"
#include "engine/safetensors.h"  // write_file_atomic

// The stb implementations live in this translation unit only. Decoders are limited to the formats
// we document, which also keeps the attack surface of "any file the user passes" small.
#pragma GCC diagnostic push  // third-party code: keep -Wall -Wextra output about our own code
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_FAILURE_USERMSG  // readable reasons ("Image not of any known type, or corrupt")
#include "stb_image.h"
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include "stb_image_write.h"
#pragma GCC diagnostic pop

namespace ams {

std::string image_extension(const std::string& path) {
    std::string e = std::filesystem::path(path).extension().string();
    for (char& c : e) c = (char)std::tolower((unsigned char)c);
    return e;
}

namespace {

// Sample -> value on the [0, 1] scale: the one conversion of samples (planar_window, alpha).
float sample_value(uint8_t v) { return (float)v / 255.f; }
float sample_value(uint16_t v) { return (float)v / 65535.f; }
float sample_value(float v) { return v; }

template <class T>
void planar_window(const T* px, int n, int64_t W, int64_t y0, int64_t x0, int64_t h, int64_t w, bool flip_h,
                   bool flip_v, float* out) {
    for (int64_t ch = 0; ch < 3; ++ch) {
        const int64_t src = n < 3 ? 0 : ch;
        for (int64_t y = 0; y < h; ++y) {
            const T* row = px + ((y0 + (flip_v ? h - 1 - y : y)) * W + x0) * n + src;
            float* o = out + (ch * h + y) * w;
            for (int64_t x = 0; x < w; ++x) o[x] = sample_value(row[(flip_h ? w - 1 - x : x) * n]);
        }
    }
}

// The channel count of a .npy image of shape s; errors name the file.
int64_t npy_channels(const std::string& path, const Shape& s) {
    const int64_t n = s.size() == 2 ? 1 : s.size() == 3 ? s[2] : 0;
    if (n < 1 || n > 4 || s[0] < 1 || s[1] < 1)
        AMS_FAIL(path, ": a .npy image must be a float array (H, W) or (H, W, C) with C = 1 to 4 channels, got shape ",
                 shape_str(s));
    return n;
}

// A float array (H, W) or (H, W, C), C = 1 to 4, on the [0, 1] scale of the other formats. Values
// are taken as they are (a simulation's unclipped noise stays unclipped); NaN, infinity and
// float64 values beyond float32's range are refused, since the network would spread them over
// the whole image.
DecodedImage decode_npy(const std::string& path) {
    const Tensor a = load_npy(path);
    const Shape& s = a.shape();
    const int64_t n = npy_channels(path, s);
    auto f = std::make_shared<const Tensor>(a.to(DType::F32));
    const float* px = f->data<float>();
    if (const int64_t i = first_nonfinite(*f); i >= 0)
        AMS_FAIL(path, ": the .npy image has a value that is NaN, infinite or beyond float32's range (",
                 a.dtype() == DType::F64 ? a.data<double>()[i] : px[i], ") at row ", i / n / s[1], ", column ",
                 i / n % s[1], ", channel ", i % n);
    return DecodedImage{s[0], s[1], (int)n, DecodedImage::Type::F32, std::shared_ptr<const void>(f, px)};
}

}  // namespace

// ---- png_chunks.h's zlib streams, from the stb code compiled here.

std::vector<unsigned char> png::zlib_compress(const unsigned char* data, size_t n) {
    if (n > (size_t)INT_MAX) return {};
    int zlen = 0;
    unsigned char* z = stbi_zlib_compress(const_cast<unsigned char*>(data), (int)n, &zlen, 8);
    if (!z) return {};
    std::vector<unsigned char> out(z, z + zlen);
    free(z);
    return out;
}

bool png::zlib_inflate(const std::string& in, size_t max_out, std::string& out) {
    if (in.size() > (size_t)INT_MAX) return false;
    // stb fails rather than overrun a fixed buffer: grow it until the stream fits or max_out.
    for (size_t cap = std::min<size_t>(max_out, std::max<size_t>(1 << 16, 4 * in.size()));; cap = std::min(max_out, 4 * cap)) {
        out.assign(cap, '\0');
        const int n = stbi_zlib_decode_buffer(out.data(), (int)std::min<size_t>(cap, INT_MAX), in.data(), (int)in.size());
        if (n >= 0) {
            out.resize((size_t)n);
            return true;
        }
        if (cap >= max_out) break;
    }
    out.clear();
    return false;
}

namespace {

// ---- 16-bit PNG: stb_image_write only writes 8-bit, so the container is assembled here and only
// the deflate stream comes from stb.

// px: interleaved samples, n per pixel (1 grey, 2 grey + alpha, 3 RGB, 4 RGBA).
std::vector<unsigned char> encode_png16(const std::string& path, const uint16_t* px, int n, int w, int h) {
    const size_t row = 1 + (size_t)w * n * 2;  // filter byte 0 (None), then big-endian samples
    if (row * (size_t)h > (size_t)INT_MAX) AMS_FAIL(path, ": image too large for a 16-bit PNG");
    std::vector<unsigned char> raw(row * (size_t)h);
    for (int y = 0; y < h; ++y) {
        unsigned char* r = raw.data() + (size_t)y * row;
        r[0] = 0;
        const uint16_t* s = px + (size_t)y * w * n;
        for (size_t i = 0; i < (size_t)w * n; ++i) {
            r[1 + 2 * i] = (unsigned char)(s[i] >> 8);
            r[2 + 2 * i] = (unsigned char)(s[i] & 0xFF);
        }
    }
    const std::vector<unsigned char> z = png::zlib_compress(raw.data(), raw.size());
    if (z.empty()) AMS_FAIL(path, ": PNG compression failed");

    std::vector<unsigned char> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    std::vector<unsigned char> ihdr;
    png::put_be32(ihdr, (uint32_t)w);
    png::put_be32(ihdr, (uint32_t)h);
    static const unsigned char colour_type[5] = {0, 0, 4, 2, 6};  // grey, grey + alpha, RGB, RGBA
    // bit depth 16, colour type, deflate, no filter method, no interlace
    ihdr.insert(ihdr.end(), {16, colour_type[n], 0, 0, 0});
    png::put_chunk(out, "IHDR", ihdr.data(), ihdr.size());
    png::put_chunk(out, "IDAT", z.data(), z.size());
    png::put_chunk(out, "IEND", nullptr, 0);
    return out;
}

void append_bytes(void* ctx, void* data, int size) {
    auto* out = static_cast<std::vector<unsigned char>*>(ctx);
    const auto* p = static_cast<const unsigned char*>(data);
    out->insert(out->end(), p, p + size);
}

}  // namespace

bool is_image_path(const std::string& path) {
    const std::string e = image_extension(path);
    return e == ".png" || e == ".jpg" || e == ".jpeg" || e == ".bmp" || e == ".npy";
}

namespace {

void check_is_file(const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) AMS_FAIL(path, ": cannot load image: no such file");
    if (std::filesystem::is_directory(path, ec)) AMS_FAIL(path, ": cannot load image: is a directory");
}

[[noreturn]] void fail_stb(const std::string& path) {
    const char* why = stbi_failure_reason();
    AMS_FAIL(path, ": cannot load image: ", why ? why : "unknown error");
}

}  // namespace

ImageSize image_size(const std::string& path) {
    check_is_file(path);
    if (image_extension(path) == ".npy") {
        const Shape s = npy_shape(path);
        const int n = (int)npy_channels(path, s);  // first: it checks the rank
        return {s[0], s[1], n};
    }
    int w = 0, h = 0, n = 0;
    if (!stbi_info(path.c_str(), &w, &h, &n)) fail_stb(path);
    return {h, w, n};
}

DecodedImage decode_image(const std::string& path) {
    check_is_file(path);
    if (image_extension(path) == ".npy") return decode_npy(path);
    int w = 0, h = 0, n = 0;
    const bool deep = stbi_is_16_bit(path.c_str());
    void* px = deep ? (void*)stbi_load_16(path.c_str(), &w, &h, &n, 0)
                    : (void*)stbi_load(path.c_str(), &w, &h, &n, 0);
    if (!px) fail_stb(path);
    return DecodedImage{h, w, n, deep ? DecodedImage::Type::U16 : DecodedImage::Type::U8,
                        std::shared_ptr<const void>(px, stbi_image_free)};
}

void planar_window(const DecodedImage& img, int64_t y0, int64_t x0, int64_t h, int64_t w, bool flip_h, bool flip_v,
                   float* out) {
    img.visit([&](const auto* px) { planar_window(px, img.channels, img.w, y0, x0, h, w, flip_h, flip_v, out); });
}

Tensor load_image(const std::string& path, ImageExtras* extras) {
    const DecodedImage img = decode_image(path);
    Tensor t = Tensor::empty({1, 3, img.h, img.w});
    planar_window(img, 0, 0, img.h, img.w, false, false, t.data<float>());
    if (extras) {  // the file's channel count, and its alpha plane (the last channel of 2 or 4)
        extras->channels = img.channels;
        extras->bits = img.type == DecodedImage::Type::U8 ? 8 : img.type == DecodedImage::Type::U16 ? 16 : 32;
        extras->metadata = read_metadata(path);
        extras->alpha = Tensor();
        if (img.channels == 2 || img.channels == 4) {
            extras->alpha = Tensor::empty({1, 1, img.h, img.w});
            float* a = extras->alpha.data<float>();
            const int n = img.channels;
            img.visit([&](const auto* px) {
                for (int64_t i = 0; i < img.h * img.w; ++i) a[i] = sample_value(px[i * n + n - 1]);
            });
        }
    }
    return t;
}

Tensor restore_file_channels(const Tensor& rgb, const ImageExtras& extras) {
    AMS_CHECK(rgb.ndim() == 4 && rgb.dim(0) == 1 && rgb.dim(1) == 3, "restore_file_channels: expected (1, 3, H, W), got ",
              shape_str(rgb.shape()));
    if (extras.channels == 3) return rgb;
    Tensor src = rgb.to(Device::CPU).to(DType::F32).contiguous();
    const int64_t H = src.dim(2), W = src.dim(3), plane = H * W;
    const bool grey = extras.channels <= 2, alpha = extras.alpha.defined();
    if (alpha)
        AMS_CHECK(extras.alpha.shape() == Shape({1, 1, H, W}), "restore_file_channels: alpha ",
                  shape_str(extras.alpha.shape()), " for a ", W, "x", H, " image");
    const int64_t C = (grey ? 1 : 3) + (alpha ? 1 : 0);
    Tensor out = Tensor::empty({1, C, H, W});
    const float* s = src.data<float>();
    float* d = out.data<float>();
    if (grey)
        for (int64_t i = 0; i < plane; ++i) d[i] = (s[i] + s[plane + i] + s[2 * plane + i]) / 3.f;
    else
        std::copy(s, s + 3 * plane, d);
    if (alpha) {
        Tensor a = extras.alpha.to(Device::CPU).to(DType::F32).contiguous();
        std::copy(a.data<float>(), a.data<float>() + plane, d + (C - 1) * plane);
    }
    return out;
}

void check_image_output(const std::string& path, int bits) {
    const std::string ext = image_extension(path);
    if (!is_image_path(path))
        AMS_FAIL(path, ": unsupported image extension '", ext, "' (supported: .png, .jpg, .jpeg, .bmp, .npy)");
    if (bits != 8 && bits != 16) AMS_FAIL(path, ": bits must be 8 or 16, got ", bits);
    if (bits == 16 && ext != ".png" && ext != ".npy")
        AMS_FAIL(path, ": 16-bit images need .png (JPEG and BMP are 8-bit)");
}

std::string save_image(const std::string& path, const Tensor& img, int bits, const ImageMetadata& meta) {
    check_image_output(path, bits);
    const std::string ext = image_extension(path);
    if (!img.defined()) AMS_FAIL(path, ": cannot save an undefined tensor");
    const Shape& s = img.shape();
    const bool shape_ok = (s.size() == 4 && s[0] == 1) || s.size() == 3;
    const int64_t n = shape_ok ? s[s.size() - 3] : 0;
    if (!shape_ok || n < 1 || n > 4)
        AMS_FAIL(path, ": save_image needs a (1, C, H, W) or (C, H, W) tensor with C = 1 to 4, got ", shape_str(s));
    const int64_t h = s[s.size() - 2], w = s.back();
    if (ext == ".npy") {  // float32 (H, W, C), unclipped: the layout image tools expect
        Tensor chw = img.to(Device::CPU).to(DType::F32).contiguous();
        Tensor hwc = Tensor::empty({h, w, n});
        const float* src = chw.data<float>();
        float* dst = hwc.data<float>();
        for (int64_t c = 0; c < n; ++c)
            for (int64_t i = 0; i < h * w; ++i) dst[i * n + c] = src[c * h * w + i];
        save_npy(path, hwc);
        std::vector<unsigned char> none;
        return embed_metadata(none, ext, meta, (int)n);  // nothing stored: says what was dropped
    }
    // stb counts bytes in int, and 65535 is JPEG's limit: both far beyond any image here.
    if (h < 1 || w < 1 || h > 65535 || w > 65535 || (h * w * n + h) * (bits / 8) > INT_MAX)
        AMS_FAIL(path, ": cannot save an image of ", w, "x", h, " pixels");

    Tensor src = img.to(Device::CPU).to(DType::F32).contiguous();
    const float* p = src.data<float>();
    const size_t plane = (size_t)h * w;
    const double maxv = bits == 16 ? 65535.0 : 255.0;
    auto level = [&](float x) {  // clamp (NaN -> 0), then round to the nearest level
        const double v = x > 0.f ? (x < 1.f ? x : 1.0) : 0.0;
        return std::lround(v * maxv);
    };

    std::vector<unsigned char> bytes;
    if (bits == 16) {
        std::vector<uint16_t> px16(plane * n);
        for (size_t i = 0; i < plane; ++i)
            for (int64_t c = 0; c < n; ++c) px16[i * n + c] = (uint16_t)level(p[c * plane + i]);
        bytes = encode_png16(path, px16.data(), (int)n, (int)w, (int)h);
    } else {
        std::vector<unsigned char> px8(plane * n);
        for (size_t i = 0; i < plane; ++i)
            for (int64_t c = 0; c < n; ++c) px8[i * n + c] = (unsigned char)level(p[c * plane + i]);
        int ok = 0;
        if (ext == ".png")
            ok = stbi_write_png_to_func(append_bytes, &bytes, (int)w, (int)h, (int)n, px8.data(), (int)(w * n));
        else if (ext == ".bmp")
            ok = stbi_write_bmp_to_func(append_bytes, &bytes, (int)w, (int)h, (int)n, px8.data());
        else
            ok = stbi_write_jpg_to_func(append_bytes, &bytes, (int)w, (int)h, (int)n, px8.data(), 95);
        if (!ok) AMS_FAIL(path, ": encoding the image failed");
    }
    const std::string lost = embed_metadata(bytes, ext, meta, (int)n);
    write_file_atomic(path, {{bytes.data(), bytes.size()}});
    return lost;
}

std::vector<std::string> list_images(const std::string& path, const std::string& match) {
    namespace fs = std::filesystem;
    std::error_code ec;
    AMS_CHECK(fs::exists(path, ec), "'", path, "' does not exist");
    if (!fs::is_directory(path, ec)) {
        AMS_CHECK(is_image_path(path), "'", path, "' is not a PNG, JPEG, BMP or .npy image");
        return {path};
    }
    std::vector<std::string> files;
    // Linked folders that lead out of `path` are followed; a link to a folder inside it (listed as
    // itself already, whatever order the folder gives), to an ancestor (`up -> ..`) or to a folder
    // seen through another link is not: it would list images twice, or forever.
    const fs::path root = fs::canonical(path, ec);
    std::set<fs::path> seen{root};
    fs::recursive_directory_iterator it(path, fs::directory_options::follow_directory_symlink, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
        std::error_code e_ec;
        const fs::directory_entry& e = *it;
        if (e.is_directory(e_ec)) {
            std::error_code link_ec;
            const fs::path dir = fs::canonical(e.path(), e_ec);
            const fs::path up = root.lexically_relative(dir), down = dir.lexically_relative(root);
            const bool ancestor = !up.empty() && *up.begin() != "..";
            const bool inside = e.is_symlink(link_ec) && !down.empty() && *down.begin() != "..";
            if (e_ec || link_ec || ancestor || inside || !seen.insert(dir).second) it.disable_recursion_pending();
            continue;
        }
        if (e.is_regular_file(e_ec) && is_image_path(e.path().string()) &&
            (match.empty() || e.path().filename().string().find(match) != std::string::npos))
            files.push_back(e.path().string());
    }
    AMS_CHECK(!ec, "cannot read folder '", path, "': ", ec.message());
    std::sort(files.begin(), files.end());
    return files;
}

}  // namespace ams
