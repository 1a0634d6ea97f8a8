// Element types and devices. F64 exists for CPU gradient checks; F16/BF16 for storage and I/O.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace ams {

enum class DType : uint8_t { F32, F64, F16, BF16 };
enum class Device : uint8_t { CPU, CUDA };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // safetensors spelling: F32, F64, F16, BF16
const char* device_name(Device d);  // "cpu" or "cuda"

// IEEE half and bfloat16 conversions (round to nearest even).
uint16_t float_to_half(float f);
float half_to_float(uint16_t h);
uint16_t float_to_bf16(float f);
float bf16_to_float(uint16_t b);

}  // namespace ams
