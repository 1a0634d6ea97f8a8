#include "models/tiling.h"

#include <cmath>

#include "engine/autograd.h"
#include "engine/check.h"
#include "engine/device.h"

namespace ams {

namespace {
int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Even cores: as many as `tile` needs, each a multiple of `align` (the last takes the rest).
std::vector<TileGrid::Span> spans(int64_t n, int64_t tile, int64_t overlap, int64_t align, int64_t& size) {
    const int64_t count = tile <= 0 ? 1 : (n + tile - 1) / tile;
    size = std::min(n, round_up((n + count - 1) / count, align));
    std::vector<TileGrid::Span> out;
    for (int64_t c0 = 0; c0 < n; c0 += size) {
        int64_t c1 = std::min(n, c0 + size);
        out.push_back({c0, c1, std::max<int64_t>(0, c0 - overlap), std::min(n, c1 + overlap)});
    }
    return out;
}
}  // namespace

TileGrid plan_tiles(int64_t H, int64_t W, int64_t tile, int64_t overlap, int64_t align) {
    AMS_CHECK(align >= 1 && overlap >= 0, "plan_tiles: align ", align, ", overlap ", overlap);
    TileGrid g;
    g.overlap = round_up(overlap, align);
    if (tile > 0) tile = std::max(align, tile / align * align);
    g.rows = spans(H, tile, g.overlap, align, g.tile_h);
    g.cols = spans(W, tile, g.overlap, align, g.tile_w);
    return g;
}

double probe_bytes_per_pixel(const Restormer& net) {
    autograd::NoGradGuard ng;
    const Device d = net.params().device();
    const ScopedMemoryLimit unlimited(d, 0);
    const int64_t side = 64;
    Tensor probe = Tensor::zeros({1, 3, side, side}, DType::F32, d);
    reset_memory_peak(d);
    const size_t before = memory_in_use(d);
    { Tensor y = net.forward(probe); }
    return (double)(memory_peak(d) - before) / (double)(side * side);
}

int64_t fit_tile(int64_t H, int64_t W, int64_t overlap, int64_t align, double bytes_per_pixel, double budget) {
    AMS_CHECK(bytes_per_pixel > 0 && budget > 0, "fit_tile: bytes per pixel ", bytes_per_pixel, ", budget ", budget);
    if ((double)H * (double)W * bytes_per_pixel <= budget) return 0;
    const int64_t ov = round_up(overlap, align);
    // A square input of side t + 2 ov must fit; t a multiple of align.
    const int64_t step = align;
    int64_t side = (int64_t)std::floor(std::sqrt(budget / bytes_per_pixel));
    int64_t t = (side - 2 * ov) / step * step;
    AMS_CHECK(t >= step, "not enough memory for even a ", step, "x", step, " tile with ", ov,
              " pixels of context: ", (int64_t)(budget / (1 << 20)), " MiB available, ",
              (int64_t)std::ceil(bytes_per_pixel), " bytes per pixel needed");
    return t;
}

Tensor run_tiled(const Tensor& image, const TileGrid& grid, const RegionFn& fn,
                 const std::function<void(int, int)>& progress) {
    AMS_CHECK(image.ndim() == 4 && image.dim(0) == 1, "run_tiled: one image (1, C, H, W), got ",
              shape_str(image.shape()));
    const int64_t H = image.dim(2), W = image.dim(3);
    if (grid.rows.size() == 1 && grid.cols.size() == 1) return fn(image, {});
    autograd::NoGradGuard ng;
    Tensor out = Tensor::empty(image.shape(), image.dtype(), image.device());
    const int total = (int)(grid.rows.size() * grid.cols.size());
    int done = 0;
    for (const auto& r : grid.rows)
        for (const auto& c : grid.cols) {
            Tensor region = image.narrow(2, r.in0, r.in1 - r.in0).narrow(3, c.in0, c.in1 - c.in0).contiguous();
            Tensor y = fn(region, ImageWindow{H, W, r.in0, c.in0});
            AMS_CHECK(y.shape() == region.shape(), "run_tiled: the denoiser changed the tile's shape");
            Tensor core = y.narrow(2, r.core0 - r.in0, r.core1 - r.core0).narrow(3, c.core0 - c.in0, c.core1 - c.core0);
            out.narrow(2, r.core0, r.core1 - r.core0).narrow(3, c.core0, c.core1 - c.core0).copy_(core);
            if (progress) progress(++done, total);
        }
    return out;
}

}  // namespace ams
