// Tiled inference: an image too large for memory is denoised in tiles. The tile cores partition
// the image; each runs with `overlap` pixels of real context on every side (fewer at the border)
// and keeps only its core, so no seams come from padding. Masks are keyed by whole-image
// coordinates (ImageWindow), so the only difference from an untiled run is the context a tile
// cannot see (the channel attention's statistics over H*W).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "engine/tensor.h"
#include "models/amsnet.h"

namespace ams {

struct TileGrid {
    int64_t tile_h = 0, tile_w = 0, overlap = 0;  // core size (the last may be smaller), context per side
    struct Span {
        int64_t core0, core1, in0, in1;  // [core0, core1) kept, [in0, in1) run
    };
    std::vector<Span> rows, cols;
};

// Cores of at most `tile` pixels per side, as even as alignment allows, context `overlap`; every
// core and context edge on a multiple of `align`. For the Restormer that is 8 * the PD stride:
// its three 2x downsamplings make it equivariant only to shifts by 8 (in sub-image pixels), so a
// tile off that grid would see the image in another phase. tile <= 0: one tile.
TileGrid plan_tiles(int64_t H, int64_t W, int64_t tile, int64_t overlap, int64_t align);

// fn(region, where the region lies) -> the denoised region (same shape). image (1, C, H, W).
// `progress(done, total)` is called after each tile when given.
// Bytes per input pixel the network's forward pass holds at its peak on its device, measured
// on a probe input (memory accounting of engine/device.h).
double probe_bytes_per_pixel(const Restormer& net);

// The largest tile (a multiple of `align`) whose run fits in `budget` bytes, at `bytes_per_pixel`
// of the tile's input (context included): the whole image when it fits (tile = 0). Throws when
// not even a tile of `align` pixels fits.
int64_t fit_tile(int64_t H, int64_t W, int64_t overlap, int64_t align, double bytes_per_pixel, double budget);

using RegionFn = std::function<Tensor(const Tensor& region, const ImageWindow& win)>;
Tensor run_tiled(const Tensor& image, const TileGrid& grid, const RegionFn& fn,
                 const std::function<void(int, int)>& progress = {});

}  // namespace ams
