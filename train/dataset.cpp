#include "train/dataset.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "engine/image_io.h"
#include "engine/rng.h"
#include "engine/timer.h"

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
    // A folder given twice (or inside another given one) must not count its images twice.
    std::vector<std::string> unique;
    std::set<fs::path> seen;
    for (const std::string& f : files_) {
        std::error_code ec;
        const fs::path key = fs::weakly_canonical(f, ec);
        if (seen.insert(ec ? fs::path(f) : key).second) unique.push_back(f);
    }
    files_ = std::move(unique);
    // Every file's size from its header, before training starts: an unreadable or too small image
    // must not end a run hours in, when a batch first draws it.
    size_t small = 0;
    std::string first;
    for (const std::string& f : files_) {
        const ImageSize s = image_size(f);
        if (s.h >= crop && s.w >= crop) continue;
        if (small++ == 0) first = str("training image '", f, "' is ", s.w, "x", s.h, ", smaller than --crop ", crop);
    }
    AMS_CHECK(small == 0, first, small > 1 ? str(" (and ", small - 1, " more)") : "");
    cache_.resize(files_.size());
}

ImageDataset::Image ImageDataset::cached(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    return cache_[i];
}

ImageDataset::Image ImageDataset::decode(size_t i) {
    std::shared_ptr<const DecodedImage> img;
    try {
        img = std::make_shared<const DecodedImage>(decode_image(files_[i]));
    } catch (const Error& e) {  // its header was fine at start-up (image_size); its data is not
        throw Error(str(e.message(), " (a training image damaged past its header: remove it from the --data folder)"));
    }
    AMS_CHECK(img->h >= crop_ && img->w >= crop_, "training image '", files_[i], "' is ", img->w, "x", img->h,
              ", smaller than --crop ", crop_);
    std::lock_guard<std::mutex> lock(mu_);
    if (!cache_[i] && cached_ + img->nbytes() <= cache_bytes_) {
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
    const uint64_t crop_stream = rng::make_stream(rng::kCrop, (uint32_t)step);
    const uint64_t flip_stream = rng::make_stream(rng::kFlip, (uint32_t)step);
    // The items grouped by the image they crop. A job takes one image's crops: from the cache, or
    // decoded (once, however often drawn) and dropped after its crops unless the cache keeps it.
    std::map<size_t, std::vector<int>> by_image;
    for (int b = 0; b < batch; ++b)
        by_image[rng::draw_below(seed, crop_stream, 3 * b, (uint32_t)files_.size())].push_back(b);
    const std::vector<std::pair<size_t, std::vector<int>>> jobs(by_image.begin(), by_image.end());
    Tensor out = Tensor::empty({batch, 3, c, c});
    auto run = [&](const std::pair<size_t, std::vector<int>>& job) {
        Image img = cached(job.first);
        if (!img) img = decode(job.first);
        for (int b : job.second) {
            const int64_t y0 = rng::draw_below(seed, crop_stream, 3 * b + 1, (uint32_t)(img->h - c + 1));
            const int64_t x0 = rng::draw_below(seed, crop_stream, 3 * b + 2, (uint32_t)(img->w - c + 1));
            const bool flip_h = rng::draw_below(seed, flip_stream, 2 * b, 2);
            const bool flip_v = rng::draw_below(seed, flip_stream, 2 * b + 1, 2);
            float* dst = out.data<float>() + b * 3 * c * c;  // each item its own slice: jobs never overlap
            planar_window(*img, y0, x0, c, c, flip_h, flip_v, dst);
        }
    };
    // Uncached images decode in parallel, one thread per image up to the cores, so at most that
    // many are held at once; a batch the cache serves runs here.
    size_t uncached = 0;
    for (const auto& job : jobs) uncached += !cached(job.first);
    const size_t workers = std::min<size_t>(uncached, std::max(1u, std::thread::hardware_concurrency()));
    if (workers <= 1) {
        for (const auto& job : jobs) run(job);
        return out;
    }
    std::atomic<size_t> next{0};
    std::vector<std::future<void>> pool;
    for (size_t t = 0; t < workers; ++t)
        pool.push_back(std::async(std::launch::async, [&] {
            for (size_t k; (k = next++) < jobs.size();) run(jobs[k]);
        }));
    for (auto& f : pool) f.get();  // rethrows a worker's error (the file's name in it)
    return out;
}

Tensor Prefetcher::get(uint64_t step) {
    Tensor t;
    if (pending_step_ == step) {  // the prefetched batch: any wait is the data falling behind
        Stopwatch wait;
        t = pending_.get();
        waited_ += wait.seconds();
    } else {
        t = ds_.batch(batch_, seed_, step);
    }
    pending_step_ = step + 1;
    pending_ = std::async(std::launch::async, [this, s = step + 1] { return ds_.batch(batch_, seed_, s); });
    return t;
}

}  // namespace ams
