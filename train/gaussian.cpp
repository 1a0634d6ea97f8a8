#include "train/gaussian.h"

#include <cmath>
#include <vector>

#include "engine/check.h"

namespace ams {

Tensor gaussian_blur(const Tensor& img_, double sigma) {
    AMS_CHECK(sigma > 0, "--gaussian: sigma must be positive, got ", sigma);
    Tensor img = img_.to(Device::CPU).to(DType::F32).contiguous();
    const int64_t planes = img.numel() / (img.dim(-2) * img.dim(-1)), H = img.dim(-2), W = img.dim(-1);
    const int r = (int)std::ceil(3 * sigma);
    std::vector<float> k(2 * r + 1);
    double sum = 0;
    for (int i = -r; i <= r; ++i) sum += k[i + r] = (float)std::exp(-i * i / (2 * sigma * sigma));
    for (float& v : k) v = (float)(v / sum);
    auto reflect = [](int64_t i, int64_t n) {
        while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
        return i;
    };
    Tensor out = Tensor::empty(img.shape());
    std::vector<float> tmp((size_t)(H * W));
    const float* src = img.data<float>();
    float* dst = out.data<float>();
    for (int64_t p = 0; p < planes; ++p) {
        const float* s = src + p * H * W;
        float* d = dst + p * H * W;
        for (int64_t y = 0; y < H; ++y)
            for (int64_t x = 0; x < W; ++x) {
                float acc = 0;
                for (int i = -r; i <= r; ++i) acc += k[i + r] * s[y * W + reflect(x + i, W)];
                tmp[y * W + x] = acc;
            }
        for (int64_t y = 0; y < H; ++y)
            for (int64_t x = 0; x < W; ++x) {
                float acc = 0;
                for (int i = -r; i <= r; ++i) acc += k[i + r] * tmp[reflect(y + i, H) * W + x];
                d[y * W + x] = acc;
            }
    }
    return out;
}

}  // namespace ams
