#include "train/dataset.h"

#include <algorithm>
#include <filesystem>

#include "engine/image_io.h"
#include "engine/rng.h"

namespace fs = std::filesystem;

namespace ams {

ImageDataset::ImageDataset(const std::vector<std::string>& folders, const std::string& include, int crop,
                           size_t cache_bytes)
    : crop_(crop), cache_bytes_(cache_bytes) {
    AMS_CHECK(!folders.empty(), "--data: give at least one folder of noisy images");
    AMS_CHECK(crop >= 8, "--crop must be at least 8, got ", crop);
    for (const std::string& dir : folders) {
        std::error_code ec;
        AMS_CHECK(fs::is_directory(dir, ec), "--data: '", dir, "' is not a folder");
        std::vector<std::string> found = list_images(dir, include);
        AMS_CHECK(!found.empty(), "--data: no PNG, JPEG, BMP or .npy images",
                  include.empty() ? "" : " matching --include '" + include + "'", " in '", dir, "'");
        files_.insert(files_.end(), found.begin(), found.end());
    }
    cache_.resize(files_.size());
}

std::shared_ptr<const Tensor> ImageDataset::image(size_t i) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (cache_[i]) return cache_[i];
    }
    auto img = std::make_shared<const Tensor>(load_image(files_[i]));
    AMS_CHECK(img->dim(2) >= crop_ && img->dim(3) >= crop_, "training image '", files_[i], "' is ", img->dim(3),
              "x", img->dim(2), ", smaller than --crop ", crop_);
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_ + img->nbytes() <= cache_bytes_) {
        cache_[i] = img;
        cached_ += img->nbytes();
    }
    return img;
}

size_t ImageDataset::cache_room() {
    std::lock_guard<std::mutex> lock(mu_);
    return cache_bytes_ > cached_ ? cache_bytes_ - cached_ : 0;
}

Tensor ImageDataset::batch(int batch, uint64_t seed, uint64_t step) {
    const int64_t c = crop_;
    Tensor out = Tensor::empty({batch, 3, c, c});
    float* dst = out.data<float>();
    const uint64_t crop_stream = rng::make_stream(rng::kCrop, (uint32_t)step);
    const uint64_t flip_stream = rng::make_stream(rng::kFlip, (uint32_t)step);
    for (int b = 0; b < batch; ++b) {
        size_t idx = rng::draw_below(seed, crop_stream, 3 * b, (uint32_t)files_.size());
        std::shared_ptr<const Tensor> img = image(idx);
        const int64_t H = img->dim(2), W = img->dim(3);
        int64_t y0 = rng::draw_below(seed, crop_stream, 3 * b + 1, (uint32_t)(H - c + 1));
        int64_t x0 = rng::draw_below(seed, crop_stream, 3 * b + 2, (uint32_t)(W - c + 1));
        bool flip_h = rng::draw_below(seed, flip_stream, 2 * b, 2), flip_v = rng::draw_below(seed, flip_stream, 2 * b + 1, 2);
        const float* src = img->data<float>();
        for (int64_t ch = 0; ch < 3; ++ch)
            for (int64_t y = 0; y < c; ++y) {
                int64_t sy = y0 + (flip_v ? c - 1 - y : y);
                const float* row = src + (ch * H + sy) * W + x0;
                float* o = dst + ((b * 3 + ch) * c + y) * c;
                for (int64_t x = 0; x < c; ++x) o[x] = row[flip_h ? c - 1 - x : x];
            }
    }
    return out;
}

Tensor Prefetcher::get(uint64_t step) {
    Tensor t = pending_step_ == step ? pending_.get() : ds_.batch(batch_, seed_, step);
    pending_step_ = step + 1;
    pending_ = std::async(std::launch::async, [this, s = step + 1] { return ds_.batch(batch_, seed_, s); });
    return t;
}

}  // namespace ams
