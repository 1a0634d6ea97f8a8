// NumPy .npy files (format versions 1.0, 2.0 and 3.0), for exchanging arrays with Python reference
// scripts: little-endian float32 ('<f4') and float64 ('<f8') in C order only.
#pragma once
#include <string>

#include "engine/tensor.h"

namespace ams {

// CPU tensor of the file's shape; F32 for '<f4', F64 for '<f8'.
Tensor load_npy(const std::string& path);
// The shape alone, from the header (with the same checks, that the data is all there included).
Shape npy_shape(const std::string& path);

// '<f8' for F64, '<f4' otherwise (F16 and BF16 are widened). Any device or layout. The header is
// padded so the data starts at a multiple of 64 bytes, as NumPy does; tmp file + rename.
void save_npy(const std::string& path, const Tensor& t);

}  // namespace ams
