// The math precision of matrix products and convolutions: one policy for the whole process and
// every device. fp32 (the default) keeps float32 accuracy. tf32 lets cuBLAS and cuDNN round float32
// operands to TF32 (10-bit mantissa) on the tensor cores; bf16 rounds the cuBLAS products' operands
// (1x1 convolutions, attention) to bfloat16 (7-bit mantissa) and lets cuDNN's dense convolutions
// use TF32. Accumulation and the forward's tensors stay float32; in training, the activations a
// backward reads are kept in bfloat16 (autograd::Saved), which halves what a step keeps.
// The CPU rounds the operands of the same products before its float GEMMs (kernels/cpu/gemm.cpp),
// so a policy's effect on quality can be measured on any machine; there it costs time instead of
// saving it. In attention the two differ by a per-row scale: the GPU multiplies the raw q and k rows
// and folds their norms into the c x c result, the CPU multiplies the normalised rows, so the
// rounding errors have the same size but not the same bits. Double-precision work is never rounded.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

namespace ams {

enum class Precision { FP32, TF32, BF16 };

// Starts as AMS_BF16=1 -> bf16, else AMS_TF32=1 -> tf32, else fp32 (the environment switches);
// the tools' --precision sets it before any work.
Precision precision();
void set_precision(Precision p);
// "fp32", "tf32" or "bf16"; anything else is an error naming `what` (e.g. "--precision").
Precision parse_precision(const std::string& text, const std::string& what);
const char* precision_name(Precision p);

// Mantissa bits a float32 operand keeps under the current policy: in cuBLAS products (1x1
// convolutions, attention) and in cuDNN's dense and grouped convolutions. 23 = not rounded.
int product_mantissa_bits();
int conv_mantissa_bits();
// Rounds f to `bits` (1 to 23) mantissa bits, to nearest, ties to even (float_to_bf16 uses it with
// 7 bits). NaN and infinity stay as they are; a value that rounds past the largest float becomes
// infinity. Inline: the GEMMs' rounded copies call it per element.
inline float round_mantissa(float f, int bits) {
    if (bits >= 23) return f;
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7f800000u) == 0x7f800000u) return f;  // NaN, infinity
    const int drop = 23 - bits;
    x = (x + (1u << (drop - 1)) - 1u + ((x >> drop) & 1u)) & ~((1u << drop) - 1u);
    std::memcpy(&f, &x, 4);
    return f;
}

}  // namespace ams
