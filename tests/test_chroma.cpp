// Chroma smoothing, its Gaussian and its calibration objective against an independent numpy
// reference (tests/reference/make_chroma_fixture.py), and what the calibration picks.
#include <filesystem>

#include <unistd.h>

#include "engine/image_io.h"
#include "helpers.h"
#include "train/chroma.h"
#include "train/gaussian.h"

using namespace ams;
namespace fs = std::filesystem;

namespace {
// BT.601 luma of (N, 3, H, W), for the "luma untouched" property.
std::vector<double> luma(const Tensor& img) {
    std::vector<double> v = img.to_double(), y;
    const int64_t P = img.dim(2) * img.dim(3);
    for (int64_t n = 0; n < img.dim(0); ++n)
        for (int64_t i = 0; i < P; ++i) {
            const double* p = v.data() + n * 3 * P + i;
            y.push_back(0.299 * p[0] + 0.587 * p[P] + 0.114 * p[2 * P]);
        }
    return y;
}
}  // namespace

TEST_CASE("Gaussian blur and chroma smoothing match the numpy reference, small planes included") {
    SafetensorsFile fx = test::fixture("chroma");
    Tensor x = fx.get("x"), small = fx.get("small");
    CHECK(test::rel_l2(gaussian_blur(x, 0.8), fx.get("blur_0_8")) < 1e-6);
    CHECK(test::rel_l2(gaussian_blur(small, 2.5), fx.get("blur_small_2_5")) < 1e-6);  // radius 8 > 4, 6
    Tensor c = chroma_smooth(x, 1.5);
    CHECK(c.shape() == x.shape());
    CHECK(test::rel_l2(c, fx.get("chroma_1_5")) < 1e-6);
    CHECK(test::rel_l2(chroma_smooth(small, 2.5), fx.get("chroma_small_2_5")) < 1e-6);
    // Luma untouched, chroma changed; sigma 0 is the identity.
    std::vector<double> y0 = luma(x), y1 = luma(c);
    double dy = 0;
    for (size_t i = 0; i < y0.size(); ++i) dy = std::max(dy, std::fabs(y0[i] - y1[i]));
    CHECK(dy < 1e-6);
    CHECK(test::rel_l2(c, x) > 1e-2);
    CHECK(test::rel_l2(chroma_smooth(x, 0), x) == 0);
}

TEST_CASE("the GPU's chroma smoothing path (ops), run on the CPU, matches the numpy reference") {
    SafetensorsFile fx = test::fixture("chroma");
    for (DType dt : {DType::F32, DType::F64}) {
        INFO(dtype_name(dt));
        Tensor c = chroma_smooth_ops(fx.get("x").to(dt), 1.5);
        CHECK(c.dtype() == dt);
        CHECK(test::rel_l2(c, fx.get("chroma_1_5")) < 1e-6);
    }
    // Its limit: the radius (8 for sigma 2.5) must be below H and W (the small plane is 4 x 6).
    CHECK_THROWS_WITH(chroma_smooth_ops(fx.get("small"), 2.5), doctest::Contains("radius 8"));
}

TEST_CASE("the luma/chroma objective matches the numpy reference") {
    SafetensorsFile fx = test::fixture("chroma");
    Tensor noisy = fx.get("noisy");
    CHECK(luma_chroma_objective(fx.get("x"), noisy, 0.6, 2.0) ==
          doctest::Approx(fx.get("objective_x").item()).epsilon(1e-6));
    CHECK(luma_chroma_objective(chroma_smooth(fx.get("x"), 1.5), noisy, 0.6, 2.0) ==
          doctest::Approx(fx.get("objective_chroma_1_5").item()).epsilon(1e-6));
}

TEST_CASE("bad arguments of the chroma smoothing are clear errors") {
    Tensor grey = Tensor::zeros({1, 1, 8, 8});
    CHECK_THROWS_WITH(chroma_smooth(grey, 1), doctest::Contains("(N, 3, H, W)"));
    CHECK_THROWS_WITH(chroma_smooth(Tensor::zeros({1, 3, 8, 8}), -1), doctest::Contains("sigma"));
    CHECK_THROWS_WITH(gaussian_blur(grey, 0), doctest::Contains("sigma"));
    CHECK_THROWS_WITH(luma_chroma_objective(Tensor::zeros({1, 3, 8, 8}), Tensor::zeros({1, 3, 8, 9}), 1, 1),
                      doctest::Contains("differ"));
}

TEST_CASE("calibration: blotchy chroma gets a blur, flat chroma none, and the record is consistent") {
    // Two images: smooth colour gradients plus chroma noise that is constant over 6x6 blocks (as
    // demosaicing/JPEG leave it) and a little independent luma noise.
    fs::path dir = fs::temp_directory_path() / ("amsnet_chroma_test_" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::vector<std::string> files;
    for (int k = 0; k < 2; ++k) {
        const int64_t H = 70 + 9 * k, W = 90;
        Tensor img = Tensor::empty({1, 3, H, W});
        Tensor blot = test::random_tensor({H / 6 + 1, W / 6 + 1}, 10 + k, DType::F64, 0, 0.04);
        Tensor fine = test::random_tensor({H, W}, 20 + k, DType::F64, 0, 0.01);
        float* p = img.data<float>();
        for (int64_t y = 0; y < H; ++y)
            for (int64_t x = 0; x < W; ++x) {
                const double b = blot.data<double>()[(y / 6) * (W / 6 + 1) + x / 6], f = fine.data<double>()[y * W + x];
                p[(0 * H + y) * W + x] = (float)std::clamp(0.3 + 0.4 * x / W + f + b, 0.0, 1.0);
                p[(1 * H + y) * W + x] = (float)std::clamp(0.5 + 0.2 * y / H + f - b, 0.0, 1.0);
                p[(2 * H + y) * W + x] = (float)std::clamp(0.4 + f + b, 0.0, 1.0);
            }
        files.push_back((dir / ("img" + std::to_string(k) + ".png")).string());
        save_image(files.back(), img);
    }
    auto identity = [](const Tensor& t) { return t; };
    ChromaCalibration c = calibrate_chroma(files, identity, 0.6, 4.0, 8, 64);
    CHECK(c.crops == 2);
    CHECK(c.crop == 64);
    CHECK(calibrate_chroma(files, identity, 0.6, 4.0, 8, 128).crop == 90);  // what the images allow: 79x90 at most
    CHECK(c.sigmas.size() == c.objective.size());
    CHECK(c.sigma > 0.5);
    // The recorded objective is the mean over the crops of the objective of the smoothed crops.
    double expect = 0;
    for (const std::string& f : files) {
        Tensor img = load_image(f);
        Tensor crop = img.narrow(2, (img.dim(2) - 64) / 2, 64).narrow(3, (img.dim(3) - 64) / 2, 64).contiguous();
        expect += luma_chroma_objective(chroma_smooth(crop, c.sigma), crop, 0.6, 4.0) / 2;
    }
    const size_t at = (size_t)(std::find(c.sigmas.begin(), c.sigmas.end(), c.sigma) - c.sigmas.begin());
    REQUIRE(at < c.sigmas.size());
    CHECK(c.objective[at] == doctest::Approx(expect).epsilon(1e-9));
    // A restoration that leaves no chroma at all: every sigma scores the same, and none is chosen.
    auto grey = [](const Tensor& t) {
        Tensor g = t.contiguous().clone();
        const int64_t P = g.dim(2) * g.dim(3);
        float* p = g.data<float>();
        for (int64_t i = 0; i < P; ++i) p[i] = p[P + i] = p[2 * P + i] = (p[i] + p[P + i] + p[2 * P + i]) / 3;
        return g;
    };
    CHECK(calibrate_chroma(files, grey, 0.6, 4.0, 8, 64).sigma == 0);
    // Without a prior on chroma, the fidelity term alone wants no blur.
    CHECK(calibrate_chroma(files, identity, 0.6, 0.0, 8, 64).sigma == 0);
    // A restoration that fails names the image it failed on.
    auto failing = [](const Tensor&) -> Tensor { AMS_FAIL("too small"); };
    CHECK_THROWS_WITH(calibrate_chroma(files, failing, 0.6, 1.0), doctest::Contains("img0.png': too small"));
    fs::remove_all(dir);
}
