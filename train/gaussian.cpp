#include "train/gaussian.h"

#include <cmath>
#include <vector>

#include "engine/check.h"

namespace ams {

namespace {
int64_t reflect(int64_t i, int64_t n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
}
}  // namespace

int gaussian_radius(double sigma) {
    AMS_CHECK(sigma > 0 && sigma <= 1000, "Gaussian blur: sigma must be in (0, 1000], got ", sigma);
    return (int)std::ceil(3 * sigma);
}

std::vector<float> gaussian_kernel(double sigma) {
    const int r = gaussian_radius(sigma);
    std::vector<float> k(2 * r + 1);
    double sum = 0;
    for (int i = -r; i <= r; ++i) sum += k[i + r] = (float)std::exp(-i * i / (2 * sigma * sigma));
    for (float& v : k) v = (float)(v / sum);
    return k;
}

Tensor gaussian_blur(const Tensor& img_, double sigma) {
    const std::vector<float> k = gaussian_kernel(sigma);
    AMS_CHECK(img_.ndim() >= 2, "Gaussian blur: needs an image, got ", img_.ndim(), " dimensions");
    Tensor img = img_.to(Device::CPU).to(DType::F32).contiguous();
    const int64_t H = img.dim(-2), W = img.dim(-1), planes = H * W ? img.numel() / (H * W) : 0;
    const int r = (int)(k.size() / 2);
    // Source column / row of each tap position, mirrored once here instead of per tap.
    std::vector<int64_t> col(W + 2 * r), row(H + 2 * r);
    for (int64_t i = 0; i < W + 2 * r; ++i) col[i] = reflect(i - r, W);
    for (int64_t i = 0; i < H + 2 * r; ++i) row[i] = reflect(i - r, H);
    Tensor out = Tensor::empty(img.shape());
    Tensor tmp = Tensor::empty(img.shape());
    const float* src = img.data<float>();
    float* mid = tmp.data<float>();
    float* dst = out.data<float>();
#pragma omp parallel for schedule(static)
    for (int64_t py = 0; py < planes * H; ++py) {  // horizontal pass, one row each
        const float* s = src + py * W;
        float* d = mid + py * W;
        for (int64_t x = 0; x < W; ++x) {
            float acc = 0;
            for (int i = 0; i <= 2 * r; ++i) acc += k[i] * s[col[x + i]];
            d[x] = acc;
        }
    }
#pragma omp parallel for schedule(static)
    for (int64_t py = 0; py < planes * H; ++py) {  // vertical pass, one output row each
        const int64_t p = py / H, y = py % H;
        const float* s = mid + p * H * W;
        float* d = dst + py * W;
        for (int64_t x = 0; x < W; ++x) d[x] = 0;
        for (int i = 0; i <= 2 * r; ++i) {
            const float* sr = s + row[y + i] * W;
            for (int64_t x = 0; x < W; ++x) d[x] += k[i] * sr[x];
        }
    }
    return out;
}

}  // namespace ams
