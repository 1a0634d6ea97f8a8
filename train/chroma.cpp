#include "train/chroma.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <future>

#include "engine/autograd.h"
#include "engine/check.h"
#include "engine/image_io.h"
#include "engine/ops.h"
#include "kernels/cpu/cpu.h"
#include "train/gaussian.h"

namespace ams {

namespace {

using Mat3 = std::array<std::array<double, 3>, 3>;

// BT.601 RGB -> YCbCr (JPEG's constants, no offsets).
constexpr Mat3 kToYcc = {{{0.299, 0.587, 0.114}, {-0.168736, -0.331264, 0.5}, {0.5, -0.418688, -0.081312}}};

Mat3 inverse(const Mat3& m) {
    Mat3 r;
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)  // cofactor of m[j][i]
            r[i][j] = m[(j + 1) % 3][(i + 1) % 3] * m[(j + 2) % 3][(i + 2) % 3] -
                      m[(j + 1) % 3][(i + 2) % 3] * m[(j + 2) % 3][(i + 1) % 3];
    const double det = m[0][0] * r[0][0] + m[0][1] * r[1][0] + m[0][2] * r[2][0];
    for (auto& row : r)
        for (double& v : row) v /= det;
    return r;
}
const Mat3 kToRgb = inverse(kToYcc);

// (N, 3, H, W) float32 CPU, contiguous -> the same layout through the 3x3 map m.
Tensor transform(const Tensor& x, const Mat3& m) {
    Tensor y = Tensor::empty(x.shape());
    const int64_t N = x.dim(0), P = x.dim(2) * x.dim(3);
    const float* s = x.data<float>();
    float* d = y.data<float>();
    for (int64_t n = 0; n < N; ++n) {
        const float* a = s + n * 3 * P;
        float* b = d + n * 3 * P;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < P; ++i)
            for (int c = 0; c < 3; ++c)
                b[c * P + i] = (float)(m[c][0] * a[i] + m[c][1] * a[P + i] + m[c][2] * a[2 * P + i]);
    }
    return y;
}

// The 3x3 map m of x's channels with element-wise ops on x's device (chroma_smooth_ops).
Tensor mix(const Tensor& x, const Mat3& m) {
    Tensor out;
    for (int c = 0; c < 3; ++c) {
        Tensor v = ops::scale(x.narrow(1, 0, 1), m[c][0]);
        for (int j = 1; j < 3; ++j) v = ops::add(v, ops::scale(x.narrow(1, j, 1), m[c][j]));
        out = c == 0 ? v : ops::concat(out, v);
    }
    return out;
}

}  // namespace

Tensor chroma_smooth_ops(const Tensor& img, double sigma) {
    const std::vector<float> k = gaussian_kernel(sigma);
    const int64_t K = (int64_t)k.size(), r = K / 2;
    AMS_CHECK(img.ndim() == 4 && img.dim(1) == 3 && r < img.dim(2) && r < img.dim(3), "chroma smoothing: ",
              shape_str(img.shape()), " is not (N, 3, H, W) with H and W above the blur's radius ", r);
    autograd::NoGradGuard no_grad;
    std::vector<float> taps2(k);
    taps2.insert(taps2.end(), k.begin(), k.end());  // the same taps for Cb and Cr
    auto taps = [&](const Shape& s) { return Tensor::from_vector(taps2, s).to(img.dtype()).to(img.device()); };
    const Tensor row = taps({2, 1, 1, K}), col = taps({2, 1, K, 1});
    const Tensor ycc = mix(img, kToYcc);
    Tensor chroma = ops::reflect_pad(ycc.narrow(1, 1, 2), (int)r, (int)r, (int)r, (int)r);
    chroma = ops::conv2d(ops::conv2d(chroma, row, Tensor(), 0, 2), col, Tensor(), 0, 2);
    return mix(ops::concat(ycc.narrow(1, 0, 1), chroma), kToRgb);
}

namespace {

Tensor rgb_images(const Tensor& img, const char* what) {
    AMS_CHECK(img.ndim() == 4 && img.dim(1) == 3, what, " needs (N, 3, H, W) images, got ", shape_str(img.shape()));
    return img.to(Device::CPU).to(DType::F32).contiguous();
}

}  // namespace

Tensor chroma_smooth(const Tensor& img_, double sigma) {
    AMS_CHECK(sigma >= 0 && std::isfinite(sigma), "chroma smoothing: sigma must be >= 0, got ", sigma);
    if (img_.is_cuda() && sigma > 0 && img_.ndim() == 4 && img_.dim(1) == 3 && img_.dtype() == DType::F32) {
        const int64_t r = gaussian_radius(sigma);
        if (r < img_.dim(2) && r < img_.dim(3)) return chroma_smooth_ops(img_, sigma);
    }
    Tensor img = rgb_images(img_, "chroma smoothing");
    if (sigma == 0 || img.numel() == 0) return img;
    Tensor ycc = transform(img, kToYcc);
    for (int64_t n = 0; n < img.dim(0); ++n) {  // blur planes 1 and 2 of each image in place
        Tensor chroma = ycc.narrow(0, n, 1).narrow(1, 1, 2);
        chroma.copy_(gaussian_blur(chroma, sigma));
    }
    return transform(ycc, kToRgb);
}

double luma_chroma_objective(const Tensor& u_, const Tensor& noisy_, double lambda, double chroma_weight) {
    Tensor u = rgb_images(u_, "the luma/chroma objective"), noisy = rgb_images(noisy_, "the luma/chroma objective");
    AMS_CHECK(u.shape() == noisy.shape(), "the luma/chroma objective: shapes ", shape_str(u.shape()), " and ",
              shape_str(noisy.shape()), " differ");
    const int64_t N = u.dim(0), H = u.dim(2), W = u.dim(3);
    Tensor ycc = transform(u, kToYcc);
    double total = 0;
    for (int64_t n = 0; n < N; ++n) {
        const float* y = ycc.data<float>() + n * 3 * H * W;
        const double prior = cpu::tv_forward<float>(y, 1, H, W) +
                             chroma_weight * (cpu::tv_forward<float>(y + H * W, 1, H, W) +
                                              cpu::tv_forward<float>(y + 2 * H * W, 1, H, W));
        const int64_t off = n * 3 * H * W;
        total += cpu::l1_forward<float>(u.data<float>() + off, noisy.data<float>() + off, 3 * H * W) + lambda * prior;
    }
    return total;
}

ChromaCalibration calibrate_chroma(const std::vector<std::string>& files,
                                   const std::function<Tensor(const Tensor&)>& restore, double lambda,
                                   double chroma_weight, int max_images, int crop,
                                   const std::function<void(int, int)>& progress) {
    AMS_CHECK(!files.empty(), "chroma calibration: no images");
    AMS_CHECK(max_images >= 1 && crop >= 8, "chroma calibration: bad crop count or size");
    ChromaCalibration c;
    for (int s = 0; s <= 16; ++s) c.sigmas.push_back(0.25 * s);
    c.objective.assign(c.sigmas.size(), 0.0);
    const size_t n = std::min(files.size(), (size_t)max_images);
    auto file_of = [&](size_t i) -> const std::string& { return files[i * files.size() / n]; };
    // The centre crop, converted alone (a 12-megapixel photo is never made float).
    auto centre_crop = [&](size_t i) {
        const DecodedImage img = decode_image(file_of(i));
        const int64_t h = std::min<int64_t>(crop, img.h), w = std::min<int64_t>(crop, img.w);
        Tensor t = Tensor::empty({1, 3, h, w});
        planar_window(img, (img.h - h) / 2, (img.w - w) / 2, h, w, false, false, t.data<float>());
        return t;
    };
    // The next image decodes while this one is restored (0.1-0.2 s a photo, a GPU restores faster).
    std::future<Tensor> next = std::async(std::launch::async, centre_crop, 0);
    for (size_t i = 0; i < n; ++i) {
        const std::string& file = file_of(i);
        Tensor noisy = next.get();
        c.crop = (int)std::max<int64_t>({c.crop, noisy.dim(2), noisy.dim(3)});  // smaller images give smaller crops
        if (i + 1 < n) next = std::async(std::launch::async, centre_crop, i + 1);
        Tensor restored;
        try {
            restored = restore(noisy).to(Device::CPU);
        } catch (const Error& e) {
            AMS_FAIL("chroma calibration on '", file, "': ", e.message());
        }
        for (size_t s = 0; s < c.sigmas.size(); ++s)
            c.objective[s] += luma_chroma_objective(chroma_smooth(restored, c.sigmas[s]), noisy, lambda, chroma_weight) / n;
        ++c.crops;
        if (progress) progress(c.crops, (int)n);
    }
    for (double v : c.objective)
        AMS_CHECK(std::isfinite(v), "chroma calibration: the objective is ", v, " (the restored crops are not finite)");
    // The least blur among the sigmas within rounding of the minimum: none unless it helps.
    const double best = *std::min_element(c.objective.begin(), c.objective.end());
    for (size_t s = 0; s < c.sigmas.size(); ++s)
        if (c.objective[s] <= best + 1e-9 * std::fabs(best)) {
            c.sigma = c.sigmas[s];
            break;
        }
    return c;
}

}  // namespace ams
