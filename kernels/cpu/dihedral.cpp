// The 8 flips/transposes of an image (the dihedral group of the square), for self-ensembles.
#include "kernels/cpu/cpu.h"

namespace ams::cpu {

template <class T>
void dihedral(const T* x, T* y, int64_t BC, int64_t H, int64_t W, int k, bool accumulate) {
    const bool fh = k & 1, fv = k & 2, tr = k & 4;
    const int64_t Ho = tr ? W : H, Wo = tr ? H : W;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < BC; ++p)
        for (int64_t i = 0; i < Ho; ++i)
            for (int64_t j = 0; j < Wo; ++j) {
                const int64_t a = tr ? j : i, b = tr ? i : j;  // in the flipped image
                const T v = x[(p * H + (fv ? H - 1 - a : a)) * W + (fh ? W - 1 - b : b)];
                T& o = y[(p * Ho + i) * Wo + j];
                o = accumulate ? o + v : v;
            }
}

template void dihedral<float>(const float*, float*, int64_t, int64_t, int64_t, int, bool);
template void dihedral<double>(const double*, double*, int64_t, int64_t, int64_t, int, bool);

}  // namespace ams::cpu
