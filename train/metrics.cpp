#include "train/metrics.h"

#include <cmath>

#include "engine/check.h"

namespace ams {

std::vector<uint8_t> quantize_u8(const Tensor& img) {
    std::vector<float> v = img.to_vector();
    std::vector<uint8_t> r(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
        float x = std::isnan(v[i]) ? 0.f : std::min(1.f, std::max(0.f, v[i]));
        r[i] = (uint8_t)std::lround(x * 255.f);
    }
    return r;
}

double psnr_u8(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
    AMS_CHECK(a.size() == b.size() && !a.empty(), "psnr: images differ in size");
    double se = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        double d = (double)a[i] - (double)b[i];
        se += d * d;
    }
    double mse = se / (double)a.size();
    return mse == 0 ? INFINITY : 20.0 * std::log10(255.0 / std::sqrt(mse));
}

namespace {
// Valid-region separable Gaussian filter of one plane: (H, W) -> (H-10, W-10).
std::vector<double> filter_valid(const std::vector<double>& p, int64_t H, int64_t W, const double* g) {
    const int64_t Ho = H - 10, Wo = W - 10;
    std::vector<double> tmp((size_t)(H * Wo)), out((size_t)(Ho * Wo));
    for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < Wo; ++x) {
            double s = 0;
            for (int k = 0; k < 11; ++k) s += g[k] * p[y * W + x + k];
            tmp[y * Wo + x] = s;
        }
    for (int64_t y = 0; y < Ho; ++y)
        for (int64_t x = 0; x < Wo; ++x) {
            double s = 0;
            for (int k = 0; k < 11; ++k) s += g[k] * tmp[(y + k) * Wo + x];
            out[y * Wo + x] = s;
        }
    return out;
}
}  // namespace

double ssim_u8(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b, int channels, int64_t H, int64_t W) {
    AMS_CHECK(a.size() == b.size() && (int64_t)a.size() == channels * H * W, "ssim: images differ in size");
    AMS_CHECK(H > 10 && W > 10, "ssim: image ", W, "x", H, " is smaller than the 11x11 window");
    double g[11], gs = 0;
    for (int k = 0; k < 11; ++k) gs += g[k] = std::exp(-((k - 5) * (k - 5)) / (2 * 1.5 * 1.5));
    for (double& v : g) v /= gs;
    const double C1 = (0.01 * 255) * (0.01 * 255), C2 = (0.03 * 255) * (0.03 * 255);
    double total = 0;
    for (int c = 0; c < channels; ++c) {
        std::vector<double> x((size_t)(H * W)), y((size_t)(H * W)), xx(x.size()), yy(x.size()), xy(x.size());
        for (int64_t i = 0; i < H * W; ++i) {
            x[i] = a[c * H * W + i];
            y[i] = b[c * H * W + i];
            xx[i] = x[i] * x[i];
            yy[i] = y[i] * y[i];
            xy[i] = x[i] * y[i];
        }
        auto mx = filter_valid(x, H, W, g), my = filter_valid(y, H, W, g);
        auto sxx = filter_valid(xx, H, W, g), syy = filter_valid(yy, H, W, g), sxy = filter_valid(xy, H, W, g);
        double s = 0;
        for (size_t i = 0; i < mx.size(); ++i) {
            double m1 = mx[i], m2 = my[i];
            double v1 = sxx[i] - m1 * m1, v2 = syy[i] - m2 * m2, cov = sxy[i] - m1 * m2;
            s += ((2 * m1 * m2 + C1) * (2 * cov + C2)) / ((m1 * m1 + m2 * m2 + C1) * (v1 + v2 + C2));
        }
        total += s / (double)mx.size();
    }
    return total / channels;
}

ImageScore score_images(const Tensor& pred, const Tensor& clean) {
    AMS_CHECK(pred.shape() == clean.shape(), "image sizes differ: ", shape_str(pred.shape()), " vs ",
              shape_str(clean.shape()));
    int64_t H = pred.dim(-2), W = pred.dim(-1), C = pred.dim(-3);
    auto a = quantize_u8(pred), b = quantize_u8(clean);
    return {psnr_u8(a, b), ssim_u8(a, b, (int)C, H, W)};
}

}  // namespace ams
