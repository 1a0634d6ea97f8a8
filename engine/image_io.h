// Image files through stb_image / stb_image_write, plus our own 16-bit PNG writer (stb cannot write
// one, and 16-bit output keeps denoised results free of 8-bit quantisation for evaluation).
#pragma once
#include <cstdint>
#include <string>
#include <memory>
#include <vector>

#include "engine/image_metadata.h"
#include "engine/tensor.h"

namespace ams {

// What load_image set aside to give 3 channels: the file's channel count (1 grey, 2 grey + alpha,
// 3 RGB, 4 RGBA) and its alpha plane (1, 1, H, W) in [0, 1], undefined without one; its bits per
// sample (8; 16 for a 16-bit PNG; 32 for .npy floats); and its Exif block, colour profile and XMP
// packet, for save_image to carry over.
struct ImageExtras {
    int channels = 3;
    Tensor alpha;
    int bits = 8;
    ImageMetadata metadata;
};

// An image file's samples as decoded: interleaved (H, W, channels), 8- or 16-bit integers from PNG,
// JPEG and BMP (the decoder's own buffer, not a copy), float32 from .npy (already on the [0, 1]
// scale). The training data caches images in this form (8-bit RGB takes a quarter of the float
// tensor's memory) and converts only its crops.
struct DecodedImage {
    enum class Type : uint8_t { U8, U16, F32 };
    int64_t h = 0, w = 0;
    int channels = 0;  // 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA
    Type type = Type::U8;
    std::shared_ptr<const void> data;  // h * w * channels samples of `type`

    size_t nbytes() const {
        return (size_t)(h * w * channels) * (type == Type::U8 ? 1 : type == Type::U16 ? 2 : 4);
    }
    // f(px) with px the samples as const uint8_t*, const uint16_t* or const float*.
    template <class F>
    decltype(auto) visit(F&& f) const {
        if (type == Type::U8) return f(static_cast<const uint8_t*>(data.get()));
        if (type == Type::U16) return f(static_cast<const uint16_t*>(data.get()));
        return f(static_cast<const float*>(data.get()));
    }
};

// The file's samples; the same formats, checks and errors as load_image.
DecodedImage decode_image(const std::string& path);

// The (3, h, w) window at (y0, x0) of img, as planar RGB floats on the [0, 1] scale, into out;
// flipped left-right (flip_h) and upside down (flip_v) when asked. Grey (+ alpha) is replicated
// to the 3 channels and alpha dropped. load_image converts a whole image with it, the training
// data its crops.
void planar_window(const DecodedImage& img, int64_t y0, int64_t x0, int64_t h, int64_t w, bool flip_h, bool flip_v,
                   float* out);

// Height, width and channel count from the file's header alone (no decoding). A file that is not
// an image of the formats above is an error naming it; one whose data is corrupt past its header
// may only fail when decoded.
struct ImageSize {
    int64_t h = 0, w = 0;
    int channels = 0;
};
ImageSize image_size(const std::string& path);

// PNG, JPEG or BMP, 8 or 16 bits per sample -> float32 CPU tensor (1, 3, H, W) in [0, 1]. Also
// .npy: a float32 or float64 array (H, W) or (H, W, C), C = 1 to 4, on the same [0, 1] scale, its
// values kept as they are (unclipped; NaN or infinity is an error). Grey images are replicated to
// 3 channels; alpha goes to `extras` (when given), not the tensor.
Tensor load_image(const std::string& path, ImageExtras* extras = nullptr);

// The inverse for a processed (1, 3, H, W) image: grey files get the mean of the 3 channels back,
// and the alpha plane is appended. So a denoised grey or transparent image keeps its form.
Tensor restore_file_channels(const Tensor& rgb, const ImageExtras& extras);

// img: (1, C, H, W) or (C, H, W) on any device, C = 1 (grey), 2 (grey + alpha), 3 (RGB) or 4
// (RGBA). The format follows the extension: .png (bits 8 or 16), .jpg/.jpeg (8-bit, quality 95;
// alpha is not stored), .bmp (8-bit; grey is stored as RGB): values clamped to [0, 1] (NaN -> 0)
// and rounded to the nearest level; or .npy: float32 (H, W, C), unclipped (bits not used).
// meta (a loaded image's extras.metadata) goes into PNG and JPEG files. Written to a temporary
// file and renamed into place. Returns what of meta the file could not store ("" for nothing;
// embed_metadata says what).
std::string save_image(const std::string& path, const Tensor& img, int bits = 8, const ImageMetadata& meta = {});
// save_image's checks of the path's extension and `bits`, for callers that want them before the
// work that produces the image; errors name the path.
void check_image_output(const std::string& path, int bits = 8);

// Whether the extension is one load_image/save_image handle (png, jpg, jpeg, bmp, npy; any case).
bool is_image_path(const std::string& path);
// The path's extension in lower case, with its dot (".png"); "" without one.
std::string image_extension(const std::string& path);

// The images under a folder (recursive, following links, sorted; only file names containing
// `match` when given), or the single image file given. Errors name the path.
std::vector<std::string> list_images(const std::string& path, const std::string& match = "");

}  // namespace ams
