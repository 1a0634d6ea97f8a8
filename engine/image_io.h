// Image files through stb_image / stb_image_write, plus our own 16-bit PNG writer (stb cannot write
// one, and 16-bit output keeps denoised results free of 8-bit quantisation for evaluation).
#pragma once
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace ams {

// PNG, JPEG or BMP, 8 or 16 bits per sample -> float32 CPU tensor (1, 3, H, W) in [0, 1].
// Grey images are replicated to 3 channels; alpha is dropped.
Tensor load_image(const std::string& path);

// img: (1, 3, H, W) or (3, H, W) on any device. Values are clamped to [0, 1] (NaN -> 0) and rounded
// to the nearest level. The format follows the extension: .png (bits 8 or 16), .jpg/.jpeg (8-bit,
// quality 95), .bmp (8-bit). Written to a temporary file and renamed into place.
void save_image(const std::string& path, const Tensor& img, int bits = 8);

// Whether the extension is one load_image/save_image handle (png, jpg, jpeg, bmp; any case).
bool is_image_path(const std::string& path);

// The images under a folder (recursive, following links, sorted; only file names containing
// `match` when given), or the single image file given. Errors name the path.
std::vector<std::string> list_images(const std::string& path, const std::string& match = "");

}  // namespace ams
