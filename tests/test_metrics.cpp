// PSNR / SSIM against an independent numpy implementation (tests/reference/make_metric_fixtures.py)
// on the real SIDD pairs in ../shared/data.
#include <fstream>
#include <sstream>

#include "engine/image_io.h"
#include "engine/json.h"
#include "helpers.h"
#include "train/metrics.h"

using namespace ams;

TEST_CASE("PSNR and SSIM match the numpy reference on real SIDD pairs") {
    std::ifstream f(test::source_path("tests/fixtures/metrics.json"));
    REQUIRE(f);
    std::stringstream ss;
    ss << f.rdbuf();
    json::Value fx = json::parse(ss.str(), "metrics.json");
    double sum_psnr = 0, sum_ssim = 0;
    size_t n = 0;
    for (const json::Value& p : fx.at("pairs").as_array()) {
        std::string pred = test::data_path(p.at("pred").as_string()), clean = test::data_path(p.at("clean").as_string());
        INFO(pred);
        ImageScore s = score_images(load_image(pred), load_image(clean));
        CHECK(s.psnr == doctest::Approx(p.at("psnr").as_number()).epsilon(1e-9));
        CHECK(s.ssim == doctest::Approx(p.at("ssim").as_number()).epsilon(1e-9));
        sum_psnr += s.psnr;
        sum_ssim += s.ssim;
        ++n;
    }
    CHECK(n == 12);
    CHECK(sum_psnr / n == doctest::Approx(fx.at("mean_psnr").as_number()).epsilon(1e-9));
    CHECK(sum_ssim / n == doctest::Approx(fx.at("mean_ssim").as_number()).epsilon(1e-9));
}

TEST_CASE("metrics: identical images, rounding and size errors") {
    Tensor a = test::random_tensor({1, 3, 20, 17}, 3, DType::F32, 0.5, 0.2);
    ImageScore same = score_images(a, a);
    CHECK(std::isinf(same.psnr));
    CHECK(same.ssim == doctest::Approx(1.0));
    // Values are clamped to [0, 1] before rounding: out-of-range predictions score like their clamp.
    Tensor over = Tensor::full({1, 3, 20, 17}, 1.7), one = Tensor::full({1, 3, 20, 17}, 1.0);
    CHECK(std::isinf(score_images(over, one).psnr));
    CHECK_THROWS_AS(score_images(a, Tensor::zeros({1, 3, 20, 16})), Error);
    CHECK_THROWS_AS(score_images(Tensor::zeros({1, 3, 8, 8}), Tensor::zeros({1, 3, 8, 8})), Error);  // < 11x11
}
