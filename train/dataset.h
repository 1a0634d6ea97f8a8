// Training data: folders of noisy images (searched recursively; PNG, JPEG or BMP of 8 or 16 bits,
// or .npy float arrays), random crops with random horizontal and vertical flips. Every draw is a
// pure function of (seed, step, item), so a resumed run sees exactly the batches an uninterrupted
// run would, and a background thread can prepare step s+1 while step s trains.
#pragma once
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/image_io.h"
#include "engine/tensor.h"

namespace ams {

class ImageDataset {
public:
    // `include`: keep only files whose name contains it (e.g. "_real" for PolyU's noisy images).
    // Decoded images are cached (as their file's samples: engine/image_io.h DecodedImage) up to
    // `cache_bytes`; the rest are decoded again whenever a batch draws them.
    ImageDataset(const std::vector<std::string>& folders, const std::string& include, int crop,
                 size_t cache_bytes = kDefaultCacheBytes);
    static constexpr size_t kDefaultCacheBytes = size_t(2) << 30;

    size_t size() const { return files_.size(); }
    const std::vector<std::string>& files() const { return files_; }

    // (batch, 3, crop, crop) float32 CPU tensor for training step `step`. The images it needs that
    // are not cached are decoded in parallel, one thread per image up to the machine's cores (a
    // 12-megapixel PNG takes a quarter of a second to decode: one thread would starve a GPU).
    Tensor batch(int batch, uint64_t seed, uint64_t step);

    // Bytes the decoded-image cache may still grow by (host memory a run will take later).
    size_t cache_room();

private:
    using Image = std::shared_ptr<const DecodedImage>;
    Image cached(size_t i);              // the cached image, or null
    Image decode(size_t i);              // decodes (and caches while there is room)
    std::vector<std::string> files_;
    int crop_;
    size_t cache_bytes_, cached_ = 0;
    std::mutex mu_;
    std::vector<Image> cache_;
};

// Prepares the batch of the next step on a background thread.
class Prefetcher {
public:
    Prefetcher(ImageDataset& ds, int batch, uint64_t seed) : ds_(ds), batch_(batch), seed_(seed) {}
    Tensor get(uint64_t step);  // the batch of `step`; starts preparing step + 1
    // Seconds get() has spent waiting for prefetched batches (training stalled on the data).
    double waited() const { return waited_; }

private:
    ImageDataset& ds_;
    int batch_;
    uint64_t seed_;
    uint64_t pending_step_ = UINT64_MAX;
    std::future<Tensor> pending_;
    double waited_ = 0;
};

}  // namespace ams
