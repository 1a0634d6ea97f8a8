// Tiled inference: the tile plan covers the image exactly once, a local filter run tile by tile
// equals the untiled run once the context covers its radius, the memory fit, and the shipped
// model tiled against untiled on a real photo.
#include <cmath>

#include "engine/autograd.h"
#include "engine/image_io.h"
#include "helpers.h"
#include "models/model_file.h"
#include "models/tiling.h"
#include "train/metrics.h"

using namespace ams;

namespace {

// A (2r+1)^2 box mean with the border clamped: local, so tiling is exact with context >= r.
Tensor box_mean(const Tensor& x, int r) {
    const int64_t C = x.dim(1), H = x.dim(2), W = x.dim(3);
    std::vector<double> in = x.to_double(), out(in.size());
    for (int64_t c = 0; c < C; ++c)
        for (int64_t y = 0; y < H; ++y)
            for (int64_t xx = 0; xx < W; ++xx) {
                double s = 0;
                for (int dy = -r; dy <= r; ++dy)
                    for (int dx = -r; dx <= r; ++dx) {
                        int64_t yy = std::clamp<int64_t>(y + dy, 0, H - 1), xw = std::clamp<int64_t>(xx + dx, 0, W - 1);
                        s += in[(c * H + yy) * W + xw];
                    }
                out[(c * H + y) * W + xx] = s / ((2 * r + 1) * (2 * r + 1));
            }
    return Tensor::from_vector(out, x.shape());
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
    std::vector<double> u = a.to_double(), v = b.to_double();
    double m = 0;
    for (size_t i = 0; i < u.size(); ++i) m = std::max(m, std::fabs(u[i] - v[i]));
    return m;
}

}  // namespace

TEST_CASE("plan_tiles: the cores cover every pixel once, the context stays inside the image") {
    for (auto [H, W, tile, overlap, align] : {std::array<int64_t, 5>{37, 53, 16, 5, 1}, {100, 64, 48, 32, 2},
                                              {9, 200, 40, 7, 5}, {20, 20, 0, 8, 1}, {20, 20, 64, 8, 1}}) {
        INFO(H, "x", W, " tile ", tile, " overlap ", overlap, " align ", align);
        TileGrid g = plan_tiles(H, W, tile, overlap, align);
        CHECK(g.overlap % align == 0);
        CHECK(g.overlap >= overlap);
        for (auto [spans, n] : {std::pair{&g.rows, H}, std::pair{&g.cols, W}}) {
            int64_t next = 0, size = spans == &g.rows ? g.tile_h : g.tile_w;
            if (tile > 0) CHECK(size <= std::max(align, tile / align * align));
            CHECK((size % align == 0 || size == n));
            for (const auto& s : *spans) {
                CHECK(s.core1 - s.core0 <= size);
                CHECK((s.core1 - s.core0 == size || s.core1 == n));
                CHECK(s.core0 == next);
                CHECK(s.core0 % align == 0);
                CHECK(s.in0 % align == 0);
                CHECK(s.in0 == std::max<int64_t>(0, s.core0 - g.overlap));
                CHECK(s.in1 == std::min(n, s.core1 + g.overlap));
                next = s.core1;
            }
            CHECK(next == n);
        }
        if (tile <= 0 || tile >= std::max(H, W)) CHECK(g.rows.size() * g.cols.size() == 1);
        if (tile > 0) {  // no more tiles than the size asks for
            CHECK((int64_t)g.rows.size() <= (H + tile - 1) / tile);
            CHECK((int64_t)g.cols.size() <= (W + tile - 1) / tile);
        }
    }
}

TEST_CASE("run_tiled: a local filter tiled equals the untiled run once the context covers its radius") {
    Tensor x = test::random_tensor({1, 3, 29, 41}, 8);
    Tensor whole = box_mean(x, 2);
    std::vector<ImageWindow> seen;
    auto fn = [&](const Tensor& region, const ImageWindow& win) {
        seen.push_back(win);
        return box_mean(region, 2);
    };
    Tensor tiled = run_tiled(x, plan_tiles(29, 41, 8, 2, 1), fn);
    CHECK(max_abs_diff(tiled, whole) < 1e-12);
    CHECK(seen.size() == 4 * 6);
    CHECK(seen.back().full_h == 29);
    CHECK(seen.back().full_w == 41);
    // Too little context: the seams show (the check above can fail).
    CHECK(max_abs_diff(run_tiled(x, plan_tiles(29, 41, 8, 1, 1), fn), whole) > 1e-3);
}

TEST_CASE("fit_tile: the whole image when it fits, else the largest tile that does") {
    const double bpp = 1000;
    CHECK(fit_tile(100, 200, 32, 1, bpp, 100.0 * 200 * bpp) == 0);
    for (int64_t align : {1, 8, 40}) {
        INFO("align ", align);
        const double budget = 5e8;
        int64_t t = fit_tile(4000, 3000, 32, align, bpp, budget);
        const int64_t ov = (32 + align - 1) / align * align, step = align;
        REQUIRE(t > 0);
        CHECK(t % step == 0);
        CHECK((double)(t + 2 * ov) * (t + 2 * ov) * bpp <= budget);
        CHECK((double)(t + step + 2 * ov) * (t + step + 2 * ov) * bpp > budget);
    }
    CHECK_THROWS_WITH_AS(fit_tile(4000, 3000, 32, 1, bpp, 1e6), doctest::Contains("not enough memory"), Error);
}

TEST_CASE("the shipped model tiled: within a fraction of an 8-bit level of the untiled result") {
    // Masks are keyed by whole-image coordinates, so the tiles hide the same pixels; what remains
    // is the context a tile cannot see (MDTA's channel statistics over its own H*W).
    ModelFile m = load_model(test::source_path("weights/amsnet-p-small-polyu.safetensors"), Device::CPU);
    Tensor noisy = ops::crop(load_image(test::data_path("polyu/Canon5D2_5_160_6400_circuit_3_real.JPG")), 64, 96, 130, 150);
    const int pd = std::stoi(m.metadata.at("inference_pd")), k = 3;  // few branches: test time
    autograd::NoGradGuard ng;
    auto fn = [&](const Tensor& region, const ImageWindow& win) {
        return amsnet_restore(*m.net, region, pd, k, 3, 4, win);
    };
    Tensor whole = amsnet_restore(*m.net, noisy, pd, k, 3, 4);
    Tensor tiled = run_tiled(noisy, plan_tiles(130, 150, 56, 32, 8 * pd), fn);
    std::vector<double> a = whole.to_double(), b = tiled.to_double();
    double mean = 0;
    for (size_t i = 0; i < a.size(); ++i) mean += std::fabs(a[i] - b[i]);
    mean /= (double)a.size();
    MESSAGE("tiled vs untiled: mean |diff| ", mean, ", max ", max_abs_diff(whole, tiled));
    CHECK(mean < 1e-3);
    CHECK(max_abs_diff(whole, tiled) < 1.0 / 64);
    // Different masks (another seed) move the result far more: the check above can fail.
    CHECK(max_abs_diff(whole, amsnet_restore(*m.net, noisy, pd, k, 5, 4)) > 1.0 / 64);
}
