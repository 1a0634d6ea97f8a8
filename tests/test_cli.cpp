// The amsnet binary end to end: help, the main job on a real photo, and every kind of bad input
// (clear message naming the file or option, non-zero exit, no partial output left behind).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/image_io.h"
#include "engine/json.h"
#include "engine/npy.h"
#include "cli_helpers.h"
#include "models/amsnet.h"
#include "models/model_file.h"
#include "train/chroma.h"
#include "train/metrics.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using namespace ams;
using ams::test::amsnet;
using ams::test::expect_error;
using ams::test::Fixture;
using ams::test::Run;

TEST_CASE("amsnet --help and every subcommand's --help") {
    Run r = amsnet("--help");
    CHECK(r.code == 0);
    for (const char* c : {"train", "finetune", "denoise", "eval", "bench", "info"}) {
        CHECK(r.out.find(c) != std::string::npos);
        Run h = amsnet(std::string(c) + " --help");
        CHECK(h.code == 0);
        CHECK(h.out.find("usage: amsnet") != std::string::npos);
    }
    CHECK(amsnet("frobnicate").code != 0);
}

TEST_CASE("denoise, info and eval work end to end on a real odd-sized photo") {
    Fixture fx;
    Run r = amsnet("denoise --weights " + fx.weights + " --input " + fx.image + " --output " + fx.p("out.png") + " --device cpu");
    INFO(r.out);
    REQUIRE(r.code == 0);
    Tensor out = load_image(fx.p("out.png"));
    CHECK(out.shape() == Shape{1, 3, 241, 241});
    r = amsnet("denoise --weights " + fx.weights + " --input " + fx.image + " --output " + fx.p("out.npy") +
               " --scheme plain --device cpu");
    CHECK(r.code == 0);
    r = amsnet("denoise --weights " + fx.weights + " --input " + fx.image + " --output " + fx.p("r3.png") +
               " --r3 2 --device cpu");
    CHECK(r.code == 0);
    r = amsnet("info --weights " + fx.weights);
    CHECK(r.code == 0);
    CHECK(r.out.find("parameters:") != std::string::npos);
    r = amsnet("eval --pred " + fx.p("out.png") + " --clean " + test::data_path("sidd-samples/GT_11.png") + " --json");
    CHECK(r.code == 0);
    CHECK(r.out.find("\"mean_psnr\"") != std::string::npos);
}

TEST_CASE("denoise keeps a grey photo grey and an alpha channel as it was") {
    Fixture fx;
    Tensor rgb = load_image(fx.image);
    const int64_t H = rgb.dim(2), W = rgb.dim(3);
    Tensor grey = Tensor::empty({1, 1, H, W}), rgba = Tensor::empty({1, 4, H, W});
    std::vector<float> g(H * W), v = rgb.to_vector(), a(4 * H * W);
    for (int64_t i = 0; i < H * W; ++i) {
        g[i] = v[i];
        for (int c = 0; c < 3; ++c) a[c * H * W + i] = v[c * H * W + i];
        a[3 * H * W + i] = (float)(i % 256) / 255.f;
    }
    save_image(fx.p("grey.png"), Tensor::from_vector(g, {1, 1, H, W}));
    save_image(fx.p("rgba.png"), Tensor::from_vector(a, {1, 4, H, W}));
    for (const char* name : {"grey.png", "rgba.png"}) {
        Run r = amsnet("denoise --weights " + fx.weights + " --input " + fx.p(name) + " --output " + fx.p(std::string("out_") + name) +
                       " --device cpu");
        INFO(r.out);
        REQUIRE(r.code == 0);
    }
    ImageExtras ex;
    load_image(fx.p("out_grey.png"), &ex);
    CHECK(ex.channels == 1);
    Tensor out = load_image(fx.p("out_rgba.png"), &ex);
    CHECK(ex.channels == 4);
    REQUIRE(ex.alpha.defined());
    std::vector<float> alpha = ex.alpha.to_vector();
    bool same = true;
    for (int64_t i = 0; i < H * W; ++i) same = same && alpha[i] == a[3 * H * W + i];
    CHECK(same);
    CHECK(out.to_vector() != std::vector<float>(v.begin(), v.end()));  // the colour was denoised
}

TEST_CASE("denoise carries the photo's Exif, colour profile and XMP; --strip-metadata keeps only the profile; .npy says it stores none") {
    Fixture fx;
    const std::string photo = test::source_path("tests/fixtures/metadata.jpg");  // PIL-written
    const ImageMetadata in = read_metadata(photo);
    REQUIRE(!in.exif.empty());
    REQUIRE(!in.icc.empty());
    REQUIRE(!in.xmp.empty());
    for (const char* name : {"m.jpg", "m.png"}) {
        Run r = amsnet("denoise --weights " + fx.weights + " --input " + photo + " --output " + fx.p(name) + " --device cpu");
        INFO(r.out);
        REQUIRE(r.code == 0);
        CHECK(r.out.find("note:") == std::string::npos);
        const ImageMetadata out = read_metadata(fx.p(name));
        CHECK(out.exif == in.exif);
        CHECK(out.icc == in.icc);
        CHECK(out.xmp == in.xmp);
    }
    Run r = amsnet("denoise --weights " + fx.weights + " --input " + photo + " --output " + fx.p("s.jpg") +
                   " --device cpu --strip-metadata");
    REQUIRE(r.code == 0);
    CHECK(read_metadata(fx.p("s.jpg")).exif.empty());
    CHECK(read_metadata(fx.p("s.jpg")).xmp.empty());
    CHECK(read_metadata(fx.p("s.jpg")).icc == in.icc);
    r = amsnet("denoise --weights " + fx.weights + " --input " + photo + " --output " + fx.p("m.npy") + " --device cpu");
    INFO(r.out);
    REQUIRE(r.code == 0);
    CHECK(r.out.find("note: " + fx.p("m.npy") + ": not stored: the Exif block, the colour profile and the XMP packet (.npy files store none)") !=
          std::string::npos);
}

TEST_CASE("denoise writes a 16-bit PNG for a 16-bit or float input unless --bits 8; 8-bit input stays 8-bit") {
    Fixture fx;
    const Tensor img = load_image(fx.image).narrow(2, 0, 40).narrow(3, 0, 56).contiguous();
    save_image(fx.p("in16.png"), img, 16);
    save_image(fx.p("in8.png"), img, 8);
    save_image(fx.p("in.npy"), img);
    auto depth = [](const std::string& png) {  // IHDR's bit depth field
        std::ifstream f(png, std::ios::binary);
        char h[25] = {};
        f.read(h, 25);
        return (int)(unsigned char)h[24];
    };
    struct Case {
        const char* in;
        const char* flags;
        int want;
    };
    for (Case c : {Case{"in16.png", "", 16}, Case{"in.npy", "", 16}, Case{"in8.png", "", 8},
                   Case{"in16.png", " --bits 8", 8}, Case{"in8.png", " --bits 16", 16}}) {
        CAPTURE(c.in);
        CAPTURE(c.flags);
        Run r = amsnet("denoise --weights " + fx.weights + " --input " + fx.p(c.in) + " --output " + fx.p("out.png") +
                       " --device cpu" + c.flags);
        INFO(r.out);
        REQUIRE(r.code == 0);
        CHECK(depth(fx.p("out.png")) == c.want);
    }
    // A JPEG is 8-bit whatever the input: auto is not an error there.
    Run r = amsnet("denoise --weights " + fx.weights + " --input " + fx.p("in16.png") + " --output " + fx.p("out.jpg") +
                   " --device cpu");
    CHECK(r.code == 0);
    r = amsnet("denoise --weights " + fx.weights + " --input " + fx.p("in16.png") + " --output " + fx.p("out.png") +
               " --bits twelve");
    CHECK(r.code != 0);
    CHECK(r.out.find("--bits") != std::string::npos);
}

TEST_CASE("denoise in tiles: --tile N, or automatically under --max-memory; close to the untiled result") {
    Fixture fx;
    const std::string base = "denoise --weights " + fx.weights + " --input " + fx.image + " --device cpu --output ";
    Run r = amsnet(base + fx.p("whole.npy") + " --tile 0");
    REQUIRE(r.code == 0);
    CHECK(r.out.find("tiles") == std::string::npos);
    r = amsnet(base + fx.p("t64.npy") + " --tile 64");
    INFO(r.out);
    REQUIRE(r.code == 0);
    CHECK(r.out.find("4 x 4 tiles of 64x64 px (+32 context)") != std::string::npos);
    CHECK(r.out.find("rounded") == std::string::npos);
    r = amsnet(base + fx.p("t60.npy") + " --tile 60 --tile-overlap 20");  // pd 2: whole 16-pixel cells
    CHECK(r.out.find("(+32 context) (--tile / --tile-overlap rounded to multiples of 16)") != std::string::npos);
    r = amsnet(base + fx.p("auto.npy") + " --max-memory 0.05");  // 50 MiB: too little for 241x241 at once
    REQUIRE(r.code == 0);
    CHECK(r.out.find("tiles of") != std::string::npos);
    // On the CPU the budget is a plan, not a limit: the whole image at once runs (over it).
    REQUIRE(amsnet(base + fx.p("over.npy") + " --max-memory 0.01 --tile 0").code == 0);
    // Passes with transposed images (non-square tiles then) and R^3, tiled and untiled.
    REQUIRE(amsnet(base + fx.p("whole6.npy") + " --tile 0 --passes 6 --r3 1").code == 0);
    REQUIRE(amsnet(base + fx.p("t6.npy") + " --tile 96 --passes 6 --r3 1").code == 0);
    std::vector<float> whole = load_npy(fx.p("whole.npy")).to_vector();
    std::vector<float> whole6 = load_npy(fx.p("whole6.npy")).to_vector(), t6 = load_npy(fx.p("t6.npy")).to_vector();
    REQUIRE(whole6.size() == t6.size());
    double mean6 = 0;
    for (size_t i = 0; i < t6.size(); ++i) mean6 += std::fabs((double)t6[i] - whole6[i]);
    CHECK(mean6 / (double)t6.size() < 1e-2);
    for (const char* f : {"t64.npy", "auto.npy"}) {
        std::vector<float> t = load_npy(fx.p(f)).to_vector();
        REQUIRE(t.size() == whole.size());
        double mean = 0;
        for (size_t i = 0; i < t.size(); ++i) mean += std::fabs((double)t[i] - whole[i]);
        CHECK(mean / (double)t.size() < 1e-2);  // a random tiny model; the shipped one: test_tiling
    }
}

TEST_CASE("bench: every measurement with its time, throughput and peak memory, as a table or JSON") {
    Run r = amsnet("bench --preset tiny --what infer --size 40x24 --r3 1 --warmup 0 --repeat 1 --device cpu --json");
    INFO(r.out);
    REQUIRE(r.code == 0);
    json::Value v = json::parse(r.out.substr(r.out.find('{')));
    const json::Value& res = v.at("results").at(0);
    CHECK(res.at("name").as_string().find("40x24") != std::string::npos);
    CHECK(res.at("seconds").as_number() > 0);
    CHECK(res.at("peak_memory_bytes").as_number() > 40 * 24 * 3 * 4);
    CHECK(v.at("device").as_string().size() > 0);
    r = amsnet("bench --preset tiny --what train-step --batch 1 --crop 40 --warmup 0 --repeat 1 --device cpu");
    CHECK(r.code == 0);
    CHECK(r.out.find("images/s") != std::string::npos);
    r = amsnet("bench --preset tiny --what train-step --batch 1 --crop 40 --warmup 0 --repeat 1 --device cpu "
               "--recompute on --json");
    REQUIRE(r.code == 0);
    const json::Value tv = json::parse(r.out.substr(r.out.find('{')));
    CHECK(tv.at("recompute").as_string() == "on");
    CHECK(tv.at("results").at(0).at("recompute").as_bool());  // what the step used
    // Per-op: every op forward and backward, with its traffic, against the measured copy bandwidth.
    r = amsnet("bench --preset tiny --what kernels --warmup 0 --repeat 1 --device cpu --json");
    REQUIRE(r.code == 0);
    v = json::parse(r.out.substr(r.out.find('{')));
    CHECK(v.at("copy_bandwidth_gb_per_s").as_number() > 0);
    CHECK(v.at("backend").as_string() == "cpu");
    int attention = 0;
    for (size_t i = 0; i < v.at("kernels").size(); ++i) {
        const json::Value& k = v.at("kernels").at(i);
        CHECK(k.at("bytes").as_number() > 0);
        CHECK(k.at("ms").as_number() > 0);  // a backward is timed, not a difference that can reach 0
        if (k.at("op").as_string().find("attention") != std::string::npos) ++attention;
    }
    CHECK(attention == 6);  // forward and backward: training (full resolution and latent level) and inference
    r = amsnet("bench --what infer --size 40y24");
    CHECK(r.code != 0);
    CHECK(r.out.find("--size") != std::string::npos);
    // An option the measurement would not use is refused, not ignored.
    expect_error("bench --what forward --crop 99", "--crop applies to --what train-step; it does nothing with --what forward");
    expect_error("bench --what kernels --r3 8", "--r3 applies to --what infer or suite");
}

TEST_CASE("denoise defaults to the inference scheme stored with the weights; flags override it") {
    Fixture fx;
    Restormer net(preset_config("tiny"));
    std::string w = fx.p("stored.safetensors");
    save_model(w, net, {{"inference_pd", "1"}, {"inference_branches", "3"}, {"inference_passes", "2"}});
    const std::string base = "denoise --weights " + w + " --input " + fx.image + " --device cpu --output ";
    Run r = amsnet(base + fx.p("s2.npy"));
    CHECK(r.code == 0);
    CHECK(r.out.find("pd 1, 3 branches, 2 passes") != std::string::npos);
    r = amsnet(base + fx.p("s.png") + " --pd 2");
    CHECK(r.out.find("pd 2, 3 branches, 2 passes") != std::string::npos);
    r = amsnet(base + fx.p("s1.npy") + " --passes 1");
    CHECK(r.out.find("pd 1, 3 branches)") != std::string::npos);
    // Two passes average two different mask draws: not the single pass's result.
    std::vector<float> one = load_npy(fx.p("s1.npy")).to_vector(), two = load_npy(fx.p("s2.npy")).to_vector();
    REQUIRE(one.size() == two.size());
    double diff = 0;
    for (size_t i = 0; i < one.size(); ++i) diff = std::max(diff, (double)std::fabs(one[i] - two[i]));
    CHECK(diff > 1e-3);
}

TEST_CASE("train checks a step's memory first: recomputation turns on when only it fits the budget") {
    Fixture fx;
    // The tiny model at batch 4, crop 160 needs about 620 MiB, or 380 MiB recomputing: 512 MiB
    // fits only the second. The run records what its steps used.
    const std::string run = " --data " + test::data_path("polyu") + " --include _real --preset tiny --batch 4 --crop 160"
                            " --steps 1 --device cpu --out ";
    Run r = amsnet("train" + run + fx.p("auto") + " --max-memory 0.5");
    INFO(r.out);
    REQUIRE(r.code == 0);
    CHECK(r.out.find("recomputing intermediates in backward") != std::string::npos);
    CHECK(load_safetensors(fx.p("auto/model.safetensors"), false).metadata.at("training_recompute") == "on");
    r = amsnet("train" + run + fx.p("roomy"));  // the free memory: no need
    REQUIRE(r.code == 0);
    CHECK(r.out.find("recomputing") == std::string::npos);
    CHECK(load_safetensors(fx.p("roomy/model.safetensors"), false).metadata.at("training_recompute") == "off");
}

TEST_CASE("train validates with the stored inference scheme, in tiles when the image does not fit --max-memory") {
    Fixture fx;
    const std::string noisy = test::data_path("sidd-samples/NOISY_11.png"), clean = test::data_path("sidd-samples/GT_11.png");
    const std::string run = " --data " + test::data_path("polyu") + " --include _real --preset tiny --batch 1 --crop 80"
                            " --steps 2 --device cpu --val-noisy " + noisy + " --val-clean " + clean +
                            " --val-every 2 --out ";
    // The val_psnr column of log.csv's row for step 2.
    auto val_psnr = [&](const std::string& dir) {
        std::ifstream f(fx.p(dir + "/log.csv"));
        std::string line;
        while (std::getline(f, line))
            if (line.rfind("2,", 0) == 0) {
                std::stringstream ss(line);
                std::string cell;
                for (int i = 0; i < 5; ++i) std::getline(ss, cell, ',');
                return std::stod(cell);
            }
        FAIL("no step 2 in ", dir, "/log.csv");
        return 0.0;
    };
    Run r = amsnet("train" + run + fx.p("whole"));
    INFO(r.out);
    REQUIRE(r.code == 0);
    CHECK(r.out.find("validation in tiles") == std::string::npos);
    // The score of the saved model with the stored scheme (no EMA: the model is the last step's).
    ModelFile m = load_model(fx.p("whole/model.safetensors"), Device::CPU);
    Tensor restored = amsnet_restore_passes(*m.net, load_image(noisy), std::stoi(m.metadata.at("inference_pd")),
                                            std::stoi(m.metadata.at("inference_branches")), 1, 0);
    const double whole = val_psnr("whole");
    CHECK(std::fabs(whole - score_images(restored, load_image(clean)).psnr) < 1e-3);
    // 50 MiB cannot hold the tiny model's forward pass over 241x241 (see the tiled denoise case),
    // but holds the step: the same training, validated in tiles (chosen before the first step),
    // scores close to the whole image.
    r = amsnet("train" + run + fx.p("tiled") + " --max-memory 0.05");
    REQUIRE(r.code == 0);
    CHECK(r.out.find("validation in tiles of") != std::string::npos);
    Tensor w1 = load_model(fx.p("tiled/model.safetensors"), Device::CPU).net->params().flat_values();
    CHECK(test::rel_l2(w1, m.net->params().flat_values()) == 0);
    const double tiled = val_psnr("tiled");
    CHECK(tiled != whole);
    CHECK(std::fabs(tiled - whole) < 0.1);
}

TEST_CASE("--precision: bf16 and tf32 emulated on the CPU, close to fp32 but not equal; train records it") {
    Fixture fx;
    const std::string base = "denoise --weights " + fx.weights + " --input " + fx.image + " --scheme plain --device cpu";
    Run r = amsnet(base + " --output " + fx.p("fp32.npy") + " --precision fp32");
    REQUIRE(r.code == 0);
    CHECK(r.out.find("precision") == std::string::npos);
    for (const char* p : {"bf16", "tf32"}) {
        CAPTURE(p);
        r = amsnet(base + " --output " + fx.p(std::string(p) + ".npy") + " --precision " + p);
        INFO(r.out);
        REQUIRE(r.code == 0);
        CHECK(r.out.find(std::string("precision ") + p + " (emulated on the CPU") != std::string::npos);
        const double d = test::rel_l2(load_npy(fx.p(std::string(p) + ".npy")), load_npy(fx.p("fp32.npy")));
        CHECK(d > 1e-6);   // the products were rounded
        CHECK(d < 2e-2);   // and the result is still the same restoration
    }
    r = amsnet("train --data " + test::data_path("sidd-samples") + " --include NOISY_1 --preset tiny --crop 16 "
               "--batch 1 --pd 2 --steps 1 --device cpu --precision bf16 --out " + fx.p("run"));
    INFO(r.out);
    REQUIRE(r.code == 0);
    CHECK(load_safetensors(fx.p("run/model.safetensors"), false).metadata.at("training_precision") == "bf16");
    // --resume continues with the checkpoint's policy unless --precision says otherwise.
    const std::string resume = "train --data " + test::data_path("sidd-samples") + " --include NOISY_1 --preset tiny "
                               "--crop 16 --batch 1 --pd 2 --device cpu --resume --out " + fx.p("run");
    r = amsnet(resume + " --steps 2");
    REQUIRE(r.code == 0);
    CHECK(r.out.find("continuing with the checkpoint's precision bf16") != std::string::npos);
    CHECK(load_safetensors(fx.p("run/model.safetensors"), false).metadata.at("training_precision") == "bf16");
    r = amsnet(resume + " --steps 3 --precision fp32");
    REQUIRE(r.code == 0);
    CHECK(r.out.find("trained with precision bf16, continuing with fp32") != std::string::npos);
    CHECK(load_safetensors(fx.p("run/model.safetensors"), false).metadata.at("training_precision") == "fp32");
    r = amsnet(base + " --output " + fx.p("x.png") + " --precision fp16");
    CHECK(r.code != 0);
    CHECK(r.out.find("--precision must be fp32, tf32 or bf16, got 'fp16'") != std::string::npos);
    CHECK(!fs::exists(fx.p("x.png")));
    r = amsnet("eval --pred " + fx.image + " --clean " + fx.image + " --precision fp16");  // checked without a model too
    CHECK(r.code != 0);
    CHECK(r.out.find("--precision must be") != std::string::npos);
    // The environment's switch: yes is on; a value that is neither on nor off says so.
    const std::string bench = "bench --preset tiny --what forward --warmup 0 --repeat 1 --device cpu";
    CHECK(amsnet(bench, "AMS_BF16=yes").out.find("precision bf16") != std::string::npos);
    r = amsnet(bench, "AMS_BF16=bf16");
    CHECK(r.out.find("AMS_BF16='bf16' is neither 1 (on) nor 0 (off): taken as off") != std::string::npos);
    CHECK(r.out.find("precision fp32") != std::string::npos);
}

TEST_CASE("finetune defaults to the scheme stored with the B weights and stores it again") {
    Fixture fx;
    Restormer net(preset_config("tiny"));
    net.init(3);
    std::string w = fx.p("b.safetensors");
    save_model(w, net, {{"inference_pd", "1"}, {"inference_branches", "3"}, {"inference_passes", "4"}});
    Run r = amsnet("finetune --data " + test::data_path("sidd-samples") + " --include NOISY_1 --weights " + w +
                   " --out " + fx.p("p") + " --steps 1 --crop 16 --batch 1 --device cpu");
    INFO(r.out);
    REQUIRE(r.code == 0);
    ModelFile m = load_model(fx.p("p/model.safetensors"), Device::CPU);
    CHECK(m.metadata.at("inference_pd") == "1");
    CHECK(m.metadata.at("inference_branches") == "3");
    CHECK(m.metadata.at("inference_passes") == "4");
    CHECK(m.metadata.at("training").find("\"branches\":3") != std::string::npos);
    CHECK(m.metadata.at("training").find("\"pd\":1") != std::string::npos);
    // Resuming without --weights keeps the scheme (read from the run's own model file).
    r = amsnet("finetune --data " + test::data_path("sidd-samples") + " --include NOISY_1 --out " + fx.p("p") +
               " --steps 2 --crop 16 --batch 1 --resume --device cpu");
    REQUIRE(r.code == 0);
    m = load_model(fx.p("p/model.safetensors"), Device::CPU);
    CHECK(m.metadata.at("step") == "2");
    CHECK(m.metadata.at("training").find("\"branches\":3") != std::string::npos);
    // Flags still win.
    r = amsnet("finetune --data " + test::data_path("sidd-samples") + " --include NOISY_1 --weights " + w +
               " --out " + fx.p("p2") + " --steps 1 --crop 16 --batch 1 --branches 2 --infer-passes 1 --device cpu");
    REQUIRE(r.code == 0);
    m = load_model(fx.p("p2/model.safetensors"), Device::CPU);
    CHECK(m.metadata.at("inference_branches") == "2");
    CHECK(m.metadata.at("inference_passes") == "1");
}

TEST_CASE("finetune --chroma-weight calibrates a chroma smoothing; denoise applies it unless told otherwise") {
    Fixture fx;
    Restormer net(preset_config("tiny"));
    net.init(3);
    const std::string w = fx.p("p.safetensors"), data = " --data " + test::data_path("sidd-samples") + " --include NOISY_1";
    save_model(w, net, {{"inference_pd", "1"}, {"inference_branches", "2"}, {"training", "{\"mode\":\"finetune\",\"lambda\":0.5}"}});
    // --calibrate-only: the weights and their metadata, plus the calibration (lambda from their record).
    // A huge chroma weight makes the strongest blur of the grid the answer.
    // The scheme it calibrates for is the one stored: theirs, or --infer-* (here 3 branches).
    Run r = amsnet("finetune --calibrate-only --chroma-weight 1e5" + data + " --weights " + w + " --out " + fx.p("c") +
                   " --infer-branches 3 --device cpu");
    INFO(r.out);
    REQUIRE(r.code == 0);
    ModelFile m = load_model(fx.p("c/model.safetensors"), Device::CPU);
    CHECK(m.metadata.at("inference_pd") == "1");
    CHECK(m.metadata.at("inference_branches") == "3");
    CHECK(m.metadata.at("inference_chroma_sigma") == "4");
    const std::string& rec = m.metadata.at("chroma_calibration");
    CHECK(rec.find("\"lambda\":0.5") != std::string::npos);
    CHECK(rec.find("\"crops\":3") != std::string::npos);
    CHECK(rec.find("\"branches\":3") != std::string::npos);
    CHECK(rec.find("\"pd\":1") != std::string::npos);
    {  // the weights themselves are untouched
        SafetensorsFile a = load_safetensors(w), b = load_safetensors(fx.p("c/model.safetensors"));
        REQUIRE(a.tensors.size() == b.tensors.size());
        for (const auto& [name, t] : a.tensors) CHECK(test::rel_l2(b.get(name), t) == 0);
    }
    CHECK_FALSE(fs::exists(fx.p("c/checkpoint.safetensors")));
    // denoise: the stored sigma by default, --chroma-sigma 0 turns it off; the difference is exactly
    // the chroma smoothing of the unsmoothed result.
    const std::string base = "denoise --weights " + fx.p("c/model.safetensors") + " --input " + fx.image + " --device cpu";
    r = amsnet(base + " --output " + fx.p("with.npy"));
    REQUIRE(r.code == 0);
    CHECK(r.out.find("chroma sigma 4") != std::string::npos);
    REQUIRE(amsnet(base + " --output " + fx.p("without.npy") + " --chroma-sigma 0").code == 0);
    r = amsnet(base + " --output " + fx.p("plain.npy") + " --scheme plain");  // calibrated for amsnet only
    REQUIRE(r.code == 0);
    CHECK(r.out.find("chroma") == std::string::npos);
    auto planar = [](const Tensor& hwc) {  // .npy holds (H, W, 3)
        const int64_t H = hwc.dim(0), W = hwc.dim(1);
        std::vector<float> v = hwc.to_vector(), chw(v.size());
        for (int64_t i = 0; i < H * W; ++i)
            for (int c = 0; c < 3; ++c) chw[c * H * W + i] = v[i * 3 + c];
        return Tensor::from_vector(chw, {1, 3, H, W});
    };
    Tensor with = planar(load_npy(fx.p("with.npy"))), without = planar(load_npy(fx.p("without.npy")));
    CHECK(test::rel_l2(with, without) > 1e-3);
    CHECK(test::rel_l2(with, chroma_smooth(without, 4)) < 1e-6);
    {  // a grey photo is never chroma-smoothed: same output as without the stage
        Tensor rgb = load_image(fx.image);
        save_image(fx.p("grey.png"), rgb.narrow(1, 1, 1).contiguous());
        const std::string g = "denoise --weights " + fx.p("c/model.safetensors") + " --input " + fx.p("grey.png") +
                              " --device cpu --output ";
        REQUIRE(amsnet(g + fx.p("g1.npy")).code == 0);
        REQUIRE(amsnet(g + fx.p("g0.npy") + " --chroma-sigma 0").code == 0);
        CHECK(test::rel_l2(load_npy(fx.p("g1.npy")), load_npy(fx.p("g0.npy"))) == 0);
    }
    // A training run with --chroma-weight ends with the calibration.
    r = amsnet("finetune" + data + " --weights " + w + " --out " + fx.p("f") + " --steps 1 --crop 16 --batch 1 "
               "--chroma-weight 1e5 --device cpu");
    REQUIRE(r.code == 0);
    m = load_model(fx.p("f/model.safetensors"), Device::CPU);
    CHECK(m.metadata.at("inference_chroma_sigma") == "4");
    CHECK(m.metadata.at("training").find("\"chroma_weight\":100000") != std::string::npos);
    // A finished run resumed with --chroma-weight runs no step and calibrates.
    REQUIRE(amsnet("finetune" + data + " --weights " + w + " --out " + fx.p("g") + " --steps 1 --crop 16 --batch 1 --device cpu")
                .code == 0);
    const std::string loss_before = load_model(fx.p("g/model.safetensors"), Device::CPU).metadata.at("final_loss");
    CHECK(load_model(fx.p("g/model.safetensors"), Device::CPU).metadata.count("inference_chroma_sigma") == 0);
    r = amsnet("finetune" + data + " --out " + fx.p("g") + " --steps 1 --crop 16 --batch 1 --resume --chroma-weight 1e5 --device cpu");
    REQUIRE(r.code == 0);
    m = load_model(fx.p("g/model.safetensors"), Device::CPU);
    CHECK(m.metadata.at("inference_chroma_sigma") == "4");
    CHECK(m.metadata.at("step") == "1");
    CHECK(m.metadata.at("final_loss") == loss_before);
    // Errors: what is missing or wrong, by name.
    expect_error("finetune --calibrate-only" + data + " --weights " + w + " --out " + fx.p("e"), "--chroma-weight");
    expect_error("finetune --calibrate-only --chroma-weight 2" + data + " --weights " + fx.weights + " --out " + fx.p("e"),
                 "--lambda");
    expect_error(base + " --output " + fx.p("x.png") + " --chroma-sigma -1", "--chroma-sigma");
    for (const char* bad : {"wide", "1e9", "-1", "nan"}) {
        save_model(fx.p("bad.safetensors"), net, {{"inference_chroma_sigma", bad}});
        expect_error("denoise --weights " + fx.p("bad.safetensors") + " --input " + fx.image + " --output " + fx.p("x.png"),
                     "inference_chroma_sigma");
    }
    CHECK_FALSE(fs::exists(fx.p("x.png")));
}

TEST_CASE("denoise a folder: same relative names under --output, symlinked and .npy images included") {
    Fixture fx;
    fs::create_directories(fx.dir / "in" / "sub");
    fs::create_symlink(fx.image, fx.dir / "in" / "sub" / "linked.png");
    fs::copy_file(fx.image, fx.dir / "in" / "copy.png");
    {  // the same photo as a float64 (H, W, 3) array, as NumPy code would save it
        Tensor img = load_image(fx.image);
        const int64_t H = img.dim(2), W = img.dim(3);
        std::vector<float> v = img.to_vector();
        std::vector<double> hwc(v.size());
        for (int64_t c = 0; c < 3; ++c)
            for (int64_t i = 0; i < H * W; ++i) hwc[i * 3 + c] = v[c * H * W + i];
        save_npy(fx.p("in/array.npy"), Tensor::from_vector(hwc, {H, W, 3}).to(DType::F64));
    }
    Run r = amsnet("denoise --weights " + fx.weights + " --input " + fx.p("in") + " --output " + fx.p("out") +
                   " --format npy --device cpu");
    INFO(r.out);
    CHECK(r.code == 0);
    CHECK(fs::exists(fx.dir / "out" / "sub" / "linked.npy"));
    REQUIRE(fs::exists(fx.dir / "out" / "copy.npy"));
    REQUIRE(fs::exists(fx.dir / "out" / "array.npy"));
    // The array holds the photo's values, so its result is the photo's, bit for bit.
    CHECK(load_npy(fx.p("out/array.npy")).to_vector() == load_npy(fx.p("out/copy.npy")).to_vector());
    // Nothing written beside the linked original.
    CHECK(!fs::exists(fs::path(fx.image).replace_extension(".npy")));

    // The GPU's overlapped pipeline (the next image read and the last result written while one is
    // denoised), forced on the CPU: the same results.
    r = amsnet("denoise --weights " + fx.weights + " --input " + fx.p("in") + " --output " + fx.p("out2") +
               " --format npy --device cpu", "AMS_DENOISE_OVERLAP=1");
    CHECK(r.code == 0);
    for (const std::string name : {"copy.npy", "array.npy", "sub/linked.npy"})
        CHECK(load_npy(fx.p("out2/" + name)).to_vector() == load_npy(fx.p("out/" + name)).to_vector());

    // An unreadable image is reported with its name and the others are denoised; the run then
    // fails, saying how many failed. In order and overlapped alike.
    fs::create_directories(fx.dir / "mixed");
    fs::copy_file(fx.image, fx.dir / "mixed" / "a.png");
    std::ofstream(fx.p("mixed/b.png")) << "not a PNG";
    fs::copy_file(fx.image, fx.dir / "mixed" / "c.png");
    for (const char* env : {"", "AMS_DENOISE_OVERLAP=1"}) {
        INFO(env);
        fs::remove_all(fx.dir / "mixed_out");
        r = amsnet("denoise --weights " + fx.weights + " --input " + fx.p("mixed") + " --output " + fx.p("mixed_out") +
                   " --format npy --device cpu", env);
        INFO(r.out);
        CHECK(r.code != 0);
        CHECK(r.out.find("[2/3] error: " + fx.p("mixed/b.png") + ": cannot load image") != std::string::npos);
        CHECK(r.out.find("1 of 3 images failed") != std::string::npos);
        for (const char* name : {"a.npy", "c.npy"}) {
            REQUIRE(fs::exists(fx.dir / "mixed_out" / name));
            CHECK(load_npy(fx.p(std::string("mixed_out/") + name)).to_vector() == load_npy(fx.p("out/copy.npy")).to_vector());
        }
        CHECK_FALSE(fs::exists(fx.dir / "mixed_out" / "b.npy"));
    }
}

TEST_CASE("bad input: one clear message naming the file or option, non-zero exit, nothing partial left") {
    Fixture fx;
    const std::string w = " --weights " + fx.weights, in = " --input " + fx.image, out = " --output " + fx.p("o.png");
    expect_error("denoise" + w + " --input " + fx.p("missing.png") + out, "missing.png");
    {
        std::ofstream(fx.p("notimage.png")) << "this is not a PNG";
        expect_error("denoise" + w + " --input " + fx.p("notimage.png") + out, "notimage.png");
    }
    {  // truncated weights
        std::ifstream src(fx.weights, std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(src)), {});
        std::ofstream(fx.p("trunc.safetensors"), std::ios::binary) << bytes.substr(0, bytes.size() / 2);
        expect_error("denoise --weights " + fx.p("trunc.safetensors") + in + out, "trunc.safetensors");
        std::ofstream(fx.p("garbage.safetensors"), std::ios::binary) << "\x10\x00\x00\x00\x00\x00\x00\x00{not json}     ";
        expect_error("denoise --weights " + fx.p("garbage.safetensors") + in + out, "garbage.safetensors");
    }
    {  // weights of another architecture: a safetensors file without Restormer tensors
        save_safetensors(fx.p("other.safetensors"), {{"encoder.weight", Tensor::zeros({4, 4})}});
        expect_error("denoise --weights " + fx.p("other.safetensors") + in + out, "other.safetensors");
    }
    expect_error("denoise" + w + in + out + " --frobnicate 3", "--frobnicate");
    expect_error("denoise" + w + in + out + " --branches 0", "--branches");
    expect_error("denoise" + w + in + out + " --r3 -2", "--r3");
    expect_error("denoise" + w + in + out + " --pd two", "--pd");
    expect_error("denoise" + w + in + " --output /nonexistent/dir/o.png", "/nonexistent/dir");
    // Output names are checked before anything else (here: before the missing weights).
    const std::string no_weights = " --weights " + fx.p("missing.safetensors");
    expect_error("denoise" + no_weights + in + " --output " + fx.p("o.tiff"), "--output: " + fx.p("o.tiff"));
    expect_error("denoise" + no_weights + in + " --output " + fx.p("o.jpg") + " --bits 16", "o.jpg: 16-bit");
    fs::create_directories(fx.dir / "one");
    fs::copy_file(fx.image, fx.dir / "one" / "a.png");
    expect_error("denoise" + w + " --input " + fx.p("one") + " --output " + fx.p("outdir") + " --format gif",
                 "--format: ");
    CHECK_FALSE(fs::exists(fx.p("outdir")));
    fs::create_directories(fx.dir / "twins");
    fs::copy_file(fx.image, fx.dir / "twins" / "a.png");
    save_image(fx.p("twins/a.npy"), load_image(fx.image));
    expect_error("denoise" + w + " --input " + fx.p("twins") + " --output " + fx.p("outdir") + " --format png",
                 "would both be written to");
    CHECK_FALSE(fs::exists(fx.p("outdir")));
    expect_error("denoise" + w + in + out + " --device quantum", "--device");
    expect_error("denoise" + w + in + out + " --tile -3", "--tile");
    expect_error("denoise" + w + in + out + " --passes 0", "--passes");
    expect_error("denoise" + w + in + out + " --tile-overlap many", "--tile-overlap");
    expect_error("denoise" + w + in + out + " --max-memory 0", "--max-memory");
    expect_error("train --data " + fx.p("nodata") + " --out " + fx.p("run") + " --steps 2", "nodata");
    expect_error("train --data " + test::data_path("polyu") + " --out " + fx.p("run") + " --steps 0", "--steps");
    expect_error("train --data " + test::data_path("polyu") + " --out " + fx.p("run") + " --steps 2 --image-cache -1",
                 "--image-cache");
    expect_error("train --data " + test::data_path("polyu") + " --out " + fx.p("run") + " --steps 2 --crop 100", "--crop");
    expect_error("train --data " + test::data_path("polyu") + " --out " + fx.p("run") + " --steps 2 --recompute maybe",
                 "--recompute");
    // A step that cannot fit the memory budget: refused before training, naming the budget.
    // (The tiny model at batch 4, crop 160 needs about 620 MiB, or 380 MiB recomputing.)
    expect_error("train --data " + test::data_path("polyu") + " --out " + fx.p("run") +
                     " --steps 2 --preset tiny --batch 64 --max-memory 0.01",
                 "allowed (--max-memory)");  // the plan's message, not the limit's out-of-memory error
    expect_error("bench --preset tiny --what train-step --device cpu --warmup 0 --repeat 1 --max-memory 0.05",
                 "allowed (--max-memory)");
    expect_error("eval --pred " + test::data_path("sidd-samples") + " --clean " + test::data_path("polyu"), "--clean");
    CHECK_FALSE(fs::exists(fx.p("o.png")));
    for (const auto& e : fs::directory_iterator(fx.dir)) CHECK(e.path().extension() != ".tmp");
}
