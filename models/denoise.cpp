#include "models/denoise.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <unistd.h>

#include "engine/autograd.h"
#include "engine/check.h"
#include "engine/device.h"
#ifdef AMS_HAVE_CUDA
#include "kernels/cuda/cuda.h"
#endif
#include "engine/ops.h"
#include "engine/rng.h"
#include "engine/timer.h"
#include "models/amsnet.h"
#include "train/chroma.h"

namespace ams {

std::string DenoiseOptions::summary() const {
    if (scheme == "plain") return str("scheme plain", chroma_sigma > 0 ? str(" (chroma sigma ", chroma_sigma, ")") : "");
    return str("scheme amsnet (pd ", pd, ", ", branches, " branches", passes > 1 ? str(", ", passes, " passes") : "",
               r3 ? str(", R^3 x", r3, " p ", r3_p) : "", chroma_sigma > 0 ? str(", chroma sigma ", chroma_sigma) : "",
               ")");
}

namespace {
// Tiles start on the network's 8-pixel grid in sub-image pixels (see plan_tiles).
int64_t alignment(const DenoiseOptions& o) { return o.scheme == "plain" ? 8 : 8 * o.pd; }
}  // namespace

int64_t auto_tile(const Restormer& net, int64_t H, int64_t W, const DenoiseOptions& o, double budget) {
    if (o.bytes_per_pixel == 0) o.bytes_per_pixel = probe_bytes_per_pixel(net);
    // The network's activations, plus the image-sized buffers of the scheme (input, padding, PD,
    // masks, branch sum; R^3's copies), with a quarter spare for allocator slack.
    const double images = o.scheme == "plain" ? 4 : (o.r3 > 0 ? 32 : 16) + (o.passes > 1 ? 4 : 0);
    const double bpp = 1.25 * (o.bytes_per_pixel + images * 3 * sizeof(float));
    // cuDNN takes at most 2^31 - 1 elements per image, and the network's output convolution sees
    // 2 * dim channels at full resolution (R^3 runs without PD): about 22 megapixels per tile at
    // dim 48. Capped on every device, so CPU and GPU tile alike.
    budget = std::min(budget, bpp * (double)INT32_MAX / (2.0 * net.config().dim));
    return fit_tile(H, W, o.overlap, alignment(o), bpp, budget);
}

TileGrid plan_denoise(const Restormer& net, const Tensor& noisy, const DenoiseOptions& o) {
    const int64_t H = noisy.dim(2), W = noisy.dim(3);
    int64_t tile = o.tile;
    if (tile < 0) {
        const Device d = noisy.device();
        double budget = 0.9 * (double)memory_available(d);
        if (o.max_memory > 0) budget = std::min(budget, o.max_memory - (double)memory_in_use(d));
        AMS_CHECK(budget > 0, "--max-memory ", o.max_memory / (1ull << 30), " GiB is less than the ",
                  memory_in_use(d) >> 20, " MiB the model and image already hold");
#ifdef AMS_HAVE_CUDA
        // cuDNN's workspaces are not in the per-pixel probe (64x64 needs almost none): give them a
        // tenth of the budget, at most 1 GiB, and the tiles the rest. The limit holds for shapes
        // cuDNN meets from here on (algorithms are chosen once per shape).
        if (d == Device::CUDA) {
            const double ws = std::min(0.1 * budget, (double)(1ull << 30));
            cuda::set_cudnn_workspace_limit((size_t)ws);
            budget -= ws;
        }
#endif
        tile = auto_tile(net, H, W, o, budget);
    }
    return plan_tiles(H, W, tile, o.overlap, alignment(o));
}

Tensor denoise_image(const Restormer& net, const Tensor& noisy, const DenoiseOptions& o) {
    autograd::NoGradGuard ng;
    // Progress when there is more than one network run (a mask branch of a tile of one pass, or of
    // the R^3 stage; a tile of the plain scheme): where it is, and the time left from the share of
    // runs done. On a terminal one line redrawn; into a log a line every 30 s, so a long photo on
    // the CPU is never silent. Every stage has the first stage's tile count (a transposed pass
    // swaps rows and columns).
    int64_t tiles = 0, units = 0, done = 0, tile = 0;
    bool show = false;
    const bool tty = isatty(2);
    double last_line = 0;
    Stopwatch sw;
    std::string stage;
    auto tick = [&] {
        if (!show || ++done >= units) return;
        const double now = sw.seconds();
        if (!tty && now - last_line < 30) return;
        last_line = now;
        std::string where = stage;
        if (tiles > 1) where += str(where.empty() ? "" : ", ", "tile ", tile, "/", tiles);
        std::fprintf(stderr, tty ? "\r  %s%s%lld%% done, %s left   " : "  %s%s%lld%% done, %s left\n", where.c_str(),
                     where.empty() ? "" : ": ", (long long)(100 * done / units),
                     format_duration(now / (double)done * (double)(units - done)).c_str());
    };
    const std::function<void()> after_branch = tick;
    auto counted = [&](const RegionFn& fn, bool per_tile) -> RegionFn {
        return [&, fn, per_tile](const Tensor& region, const ImageWindow& win) {
            ++tile;
            Tensor y = fn(region, win);
            if (per_tile) tick();
            return y;
        };
    };
    auto tiled = [&](const Tensor& img, const RegionFn& fn, bool per_tile = false) {
        TileGrid g = plan_denoise(net, img, o);
        if (tiles == 0) {  // the first stage
            tiles = (int64_t)(g.rows.size() * g.cols.size());
            units = tiles * (o.scheme == "plain" ? 1 : (int64_t)o.branches * (o.passes + o.r3));
            show = o.verbose && units > 1;
            // A tile and its context are whole PD cells (multiples of 8 x PD): say when the asked
            // sizes were rounded, or the printed ones look like a mistake.
            const int64_t a = alignment(o);
            const bool rounded = (o.tile > 0 && o.tile % a != 0) || o.overlap % a != 0;
            if (o.verbose && tiles > 1)
                std::fprintf(stderr, "  %zu x %zu tiles of %lldx%lld px (+%lld context)%s\n", g.cols.size(),
                             g.rows.size(), (long long)g.tile_w, (long long)g.tile_h, (long long)g.overlap,
                             rounded ? str(" (--tile / --tile-overlap rounded to multiples of ", a, ")").c_str() : "");
        }
        tile = 0;
        return run_tiled(img, g, counted(fn, per_tile));
    };
    Tensor d;
    if (o.scheme == "plain") {
        d = tiled(noisy, [&](const Tensor& region, const ImageWindow&) { return net.forward_any_size(region); }, true);
    } else {
        // Each pass is tiled from its flipped/transposed image, so its tiles' masks are keyed exactly
        // as the untiled pass's.
        d = average_passes(noisy, o.passes, [&](const Tensor& img, int j) {
            stage = o.passes > 1 ? str("pass ", j + 1, "/", o.passes) : "";
            return tiled(img, [&](const Tensor& region, const ImageWindow& win) {
                return amsnet_restore(net, region, o.pd, o.branches, o.seed, rng::make_stream(rng::kMask, j), win,
                                      after_branch);
            });
        });
        if (o.r3 > 0) {
            stage = "R^3";
            d = tiled(noisy, [&](const Tensor& region, const ImageWindow& win) {
                Tensor dr = d.narrow(2, win.y0, region.dim(2)).narrow(3, win.x0, region.dim(3)).contiguous();
                return amsnet_r3(net, region, dr, o.r3, o.r3_p, o.branches, o.seed, win, after_branch);
            });
        }
    }
    if (show && tty) std::fprintf(stderr, "\r%*s\r", 72, "");
    if (o.chroma_sigma > 0) d = chroma_smooth(d, o.chroma_sigma).to(d.device());
    return d;
}

}  // namespace ams
