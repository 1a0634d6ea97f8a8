// Helpers shared by the subcommands: device choice, image lists, writing outputs, timing.
#pragma once
#include <string>
#include <vector>

#include "engine/image_io.h"
#include "engine/tensor.h"
#include "engine/timer.h"

namespace ams::cli {

using ams::list_images;  // engine/image_io.h
bool is_directory(const std::string& path);
// Creates a folder (and parents); errors name it.
void make_directory(const std::string& path);

// Saves a (1, 3, H, W) result by extension: .png/.jpg/.bmp (8-bit, or `bits` 16 for PNG), .npy
// (float32 H x W x 3, unclipped). Atomic (temporary name, then rename).
void save_result(const std::string& path, const Tensor& img, int bits);

using ams::format_duration;
using ams::Stopwatch;

}  // namespace ams::cli
