// GDFN's depthwise 3x3 and GELU gate as one op on the CPU, the reference for the CUDA kernels:
// one image at a time, the depthwise output goes to the calling thread's scratch and straight into
// the gate, so it never exists for the whole batch and autograd keeps only the op's input (the
// separate ops keep the 2C-channel depthwise output too). The arithmetic is that of depthwise.cpp
// and gelu_gate.cpp, in the same order.
#include <algorithm>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/parallel.h"

namespace ams::cpu {

namespace {
struct DwGateScratch;

ConvShape image_shape(int64_t C, int64_t H, int64_t W) { return ConvShape{1, 2 * C, H, W, 2 * C, 3, 3, 1, 2 * C}; }
}  // namespace

template <class T>
void dwconv_gate_forward(const T* x, const T* w, const T* b, T* y, int64_t B, int64_t C, int64_t H, int64_t W) {
    const int64_t N = H * W;
    T* d = thread_scratch<DwGateScratch, T>(0, 2 * C * N);
    for (int64_t n = 0; n < B; ++n) {
        depthwise_forward(image_shape(C, H, W), x + n * 2 * C * N, w, b, d);
        gelu_gate_forward(d, y + n * C * N, 1, C, N);
    }
}

template <class T>
void dwconv_gate_backward(const T* x, const T* w, const T* b, const T* dy, T* dx, T* dw, T* db, int64_t B, int64_t C,
                          int64_t H, int64_t W) {
    const int64_t N = H * W;
    T* d = thread_scratch<DwGateScratch, T>(0, 2 * C * N);
    T* dd = thread_scratch<DwGateScratch, T>(1, 2 * C * N);
    for (int64_t n = 0; n < B; ++n) {
        const T* xn = x + n * 2 * C * N;
        depthwise_forward(image_shape(C, H, W), xn, w, b, d);  // recomputed, not saved
        std::fill(dd, dd + 2 * C * N, T(0));
        gelu_gate_backward(d, dy + n * C * N, dd, 1, C, N);
        depthwise_backward(image_shape(C, H, W), xn, w, dd, dx ? dx + n * 2 * C * N : nullptr, dw, db);
    }
}

#define AMS_INST(T)                                                                                               \
    template void dwconv_gate_forward<T>(const T*, const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t); \
    template void dwconv_gate_backward<T>(const T*, const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t,  \
                                          int64_t, int64_t);
AMS_INST(float)
AMS_INST(double)
#undef AMS_INST

}  // namespace ams::cpu
