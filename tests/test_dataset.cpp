// Training data (train/dataset.h): every crop of a batch is a crop of the image load_image gives,
// flipped; batches do not depend on caching or on the parallel decoding; the cache keeps the
// file's samples (not float tensors); a bad image fails the batch with its name.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "engine/image_io.h"
#include "engine/npy.h"
#include "train/dataset.h"

using namespace ams;
namespace fs = std::filesystem;

namespace {

struct Folder {
    fs::path dir = fs::temp_directory_path() / ("ams_test_dataset_" + std::to_string(std::random_device{}()));
    Folder() { fs::create_directories(dir); }
    ~Folder() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    std::string p(const std::string& name) const { return (dir / name).string(); }
};

// (1, C, H, W) of uniform values in [lo, hi).
Tensor random_image(int64_t C, int64_t H, int64_t W, uint32_t seed, float lo = 0.f, float hi = 1.f) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(lo, hi);
    std::vector<float> v((size_t)(C * H * W));
    for (float& x : v) x = u(rng);
    return Tensor::from_vector(v, {1, C, H, W});
}

// Whether crop (3, c, c) equals some crop of img (1, 3, H, W) at some offset, under one of the four
// flip combinations.
bool is_flipped_crop_of(const float* crop, int64_t c, const Tensor& img) {
    const int64_t H = img.dim(2), W = img.dim(3);
    const float* p = img.data<float>();
    for (int flips = 0; flips < 4; ++flips)
        for (int64_t y0 = 0; y0 + c <= H; ++y0)
            for (int64_t x0 = 0; x0 + c <= W; ++x0) {
                bool same = true;
                for (int64_t ch = 0; ch < 3 && same; ++ch)
                    for (int64_t y = 0; y < c && same; ++y)
                        for (int64_t x = 0; x < c && same; ++x) {
                            const int64_t sy = y0 + ((flips & 2) ? c - 1 - y : y);
                            const int64_t sx = x0 + ((flips & 1) ? c - 1 - x : x);
                            same = crop[(ch * c + y) * c + x] == p[(ch * H + sy) * W + sx];
                        }
                if (same) return true;
            }
    return false;
}

}  // namespace

TEST_CASE("training batches: flipped crops of the images as load_image gives them, whatever the cache") {
    Folder f;
    // Every kind of file the loader takes, at odd sizes: 8-bit RGB, 16-bit grey + alpha, 8-bit RGBA,
    // float RGB with values outside [0, 1], float grey.
    save_image(f.p("rgb8.png"), random_image(3, 23, 31, 1));
    save_image(f.p("ga16.png"), random_image(2, 29, 21, 2), 16);
    save_image(f.p("rgba8.png"), random_image(4, 20, 25, 3));
    save_image(f.p("rgbf.npy"), random_image(3, 19, 27, 4, -0.5f, 1.5f));
    save_image(f.p("greyf.npy"), random_image(1, 22, 18, 5));
    std::vector<Tensor> images;
    const int crop = 16, batch = 6, steps = 12;

    ImageDataset cache_all({f.dir.string()}, "", crop), cache_none({f.dir.string()}, "", crop, 0);
    REQUIRE(cache_all.size() == 5);
    for (const std::string& file : cache_all.files()) images.push_back(load_image(file));
    std::vector<bool> drawn(images.size(), false);
    for (uint64_t step = 0; step < steps; ++step) {
        Tensor a = cache_all.batch(batch, 7, step), b = cache_none.batch(batch, 7, step);
        REQUIRE(a.shape() == Shape{batch, 3, crop, crop});
        CHECK(a.to_vector() == b.to_vector());
        CHECK(a.to_vector() == cache_all.batch(batch, 7, step).to_vector());  // cached now: the same again
        for (int i = 0; i < batch; ++i) {
            const float* crop_i = a.data<float>() + i * 3 * crop * crop;
            bool found = false;
            for (size_t k = 0; k < images.size() && !found; ++k)
                if (is_flipped_crop_of(crop_i, crop, images[k])) found = true, drawn[k] = true;
            INFO("step ", step, ", item ", i);
            CHECK(found);
        }
    }
    CHECK(std::count(drawn.begin(), drawn.end(), true) >= 4);
    CHECK(cache_all.batch(batch, 8, 0).to_vector() != cache_all.batch(batch, 7, 0).to_vector());  // the seed matters

    // The cache holds the files' samples: one byte per 8-bit sample, two per 16-bit, four per float.
    const size_t samples = 23 * 31 * 3 + 2 * (29 * 21 * 2) + 20 * 25 * 4 + 4 * (19 * 27 * 3 + 22 * 18);
    CHECK(cache_all.cache_room() == ImageDataset::kDefaultCacheBytes - samples);
    CHECK(cache_none.cache_room() == 0);
}

TEST_CASE("training data: an unreadable or too small image is refused before any batch, naming the file") {
    Folder f;
    save_image(f.p("fine.png"), random_image(3, 40, 40, 1));
    save_image(f.p("small.png"), random_image(3, 12, 40, 2));
    save_image(f.p("narrow.npy"), random_image(1, 40, 15, 3));
    Folder bad;
    std::ofstream(bad.p("broken.png")) << "not a PNG";
    auto error_of = [&](const Folder& folder, const std::string& include) {
        try {
            ImageDataset d({folder.dir.string()}, include, 16);
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    CHECK(error_of(f, "fine") == "");
    CHECK(error_of(f, "small").find("small.png' is 40x12, smaller than --crop 16") != std::string::npos);
    CHECK(error_of(f, "narrow").find("narrow.npy' is 15x40") != std::string::npos);
    const std::string all = error_of(f, "");  // the first small one in sorted order, and a count
    CHECK(all.find("narrow.npy' is 15x40") != std::string::npos);
    CHECK(all.find("(and 1 more)") != std::string::npos);
    CHECK(error_of(bad, "").find("broken.png") != std::string::npos);

    // A file whose header reads but whose data is corrupt still fails the batch that draws it.
    Folder g;
    save_image(g.p("cut.png"), random_image(3, 40, 40, 4));
    std::string bytes;
    {
        std::ifstream in(g.p("cut.png"), std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    std::ofstream(g.p("cut.png"), std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() / 2);
    ImageDataset d({g.dir.string()}, "", 16);
    std::string message;
    try {
        d.batch(2, 1, 0);
    } catch (const Error& e) {
        message = e.what();
    }
    CHECK(message.find("cut.png") != std::string::npos);
}
