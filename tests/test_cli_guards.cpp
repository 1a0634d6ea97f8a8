// What the amsnet binary must never do: replace a photo or a training run, wrap a number around,
// load damaged weights, change a resumed run behind the user's back, or leave a folder of nothing.
#include <csignal>
#include <filesystem>
#include <fstream>

#include "cli_helpers.h"
#include "files.h"
#include "engine/image_io.h"
#include "engine/json.h"
#include "engine/npy.h"
#include "engine/safetensors.h"

namespace fs = std::filesystem;
using namespace ams;
using ams::test::amsnet;
using ams::test::expect_error;
using ams::test::Fixture;
using ams::test::read_bytes;
using ams::test::Run;

namespace {

// A folder of two 48x48 crops of the fixture's photo: enough to train the tiny model at crop 40.
std::string small_data(const Fixture& fx) {
    const Tensor img = load_image(fx.image);
    fs::create_directories(fx.dir / "data");
    for (int k = 0; k < 2; ++k)
        save_image(fx.p("data/" + std::to_string(k) + ".png"), img.narrow(2, 60 * k, 48).narrow(3, 50, 48).contiguous());
    return fx.p("data");
}

json::Value training_record(const std::string& model) {
    return json::parse(load_safetensors(model, false).metadata.at("training"));
}

}  // namespace

TEST_CASE("denoise never replaces a photo and never takes its own results for photos") {
    Fixture fx;
    const std::string w = " --weights " + fx.weights;
    fs::copy_file(fx.image, fx.p("same.png"));
    const std::string before = read_bytes(fx.p("same.png"));
    expect_error("denoise" + w + " --input " + fx.p("same.png") + " --output " + fx.p("same.png"), "is the input photo itself");
    CHECK(read_bytes(fx.p("same.png")) == before);

    fs::create_directories(fx.dir / "photos");
    const Tensor small = load_image(fx.image).narrow(2, 0, 40).narrow(3, 0, 48).contiguous();
    save_image(fx.p("photos/a.png"), small);
    expect_error("denoise" + w + " --input " + fx.p("photos") + " --output " + fx.p("photos"), "is the input folder");
    expect_error("denoise" + w + " --input " + fx.p("photos") + " --output " + fx.p("photos.png"),
                 "names an image file, but --input is a folder");
    expect_error("denoise" + w + " --input " + fx.p("photos/a.png") + " --output " + fx.p("x.png") + " --match a",
                 "--match picks files in a folder");
    expect_error("denoise" + w + " --input " + fx.p("photos") + " --output " + fx.p("o") + " --match zzz",
                 "whose name contains 'zzz'");
    // Results inside the photos' folder: refused (later runs would take them for photos, and a
    // result could land on a photo of the same name in a subfolder).
    fs::create_directories(fx.dir / "photos" / "sub");
    expect_error("denoise" + w + " --input " + fx.p("photos") + " --output " + fx.p("photos/sub"),
                 "is inside the input folder");
    fs::remove(fx.dir / "photos" / "sub");
    // A linked folder among the photos that leads to the results: skipped, with a note, run after run.
    fs::create_directory_symlink(fx.dir / "results", fx.dir / "photos" / "link");
    for (int run = 0; run < 2; ++run) {
        Run r = amsnet("denoise" + w + " --input " + fx.p("photos") + " --output " + fx.p("results") +
                       " --format .npy --device cpu");
        INFO(r.out);
        REQUIRE(r.code == 0);
        CHECK(r.out.find("[1/1] " + fx.p("photos/a.png") + " -> " + fx.p("results/a.npy")) != std::string::npos);
        CHECK((run == 0 || r.out.find("1 image under") != std::string::npos));
    }
    CHECK_FALSE(fs::exists(fx.dir / "results" / "link"));
    expect_error("denoise" + w + " --input " + fx.p("photos") + " --output " + fx.p("o2") + " --format png/../x",
                 "is not a file extension");
    // A results folder around the photos', or one whose link leads a result back into them.
    expect_error("denoise" + w + " --input " + fx.p("photos") + " --output " + fx.dir.string(), "holds the input folder");
    fs::create_directories(fx.dir / "photos2" / "sub");
    save_image(fx.p("photos2/a.png"), small);
    save_image(fx.p("photos2/sub/a.png"), small.narrow(2, 0, 32).contiguous());
    const std::string photo = read_bytes(fx.p("photos2/a.png"));
    fs::create_directories(fx.dir / "trap");
    fs::create_directory_symlink(fx.dir / "photos2", fx.dir / "trap" / "sub");  // trap/sub/a.png is photos2/a.png
    expect_error("denoise" + w + " --input " + fx.p("photos2") + " --output " + fx.p("trap"),
                 "which a link leads into the input folder");
    CHECK(read_bytes(fx.p("photos2/a.png")) == photo);
    expect_error("denoise" + w + " --input " + fx.p("nothere") + " --output " + fx.p("o3") + " --match a",
                 "--input: '" + fx.p("nothere") + "' does not exist");
    // A folder no result can be written to: said before the model is even read.
    expect_error("denoise --weights " + fx.p("missing.safetensors") + " --input " + fx.p("photos/a.png") +
                     " --output /proc/o.png",
                 "cannot write in folder '/proc'");
    // Weights that fail to load: no output folder is left behind.
    expect_error("denoise --weights " + fx.p("missing.safetensors") + " --input " + fx.p("photos") + " --output " +
                     fx.p("new/results"),
                 "missing.safetensors");
    CHECK_FALSE(fs::exists(fx.dir / "new"));
    // A single image too small for the scheme: the error names it.
    save_image(fx.p("tiny.png"), small.narrow(2, 0, 3).narrow(3, 0, 3).contiguous());
    expect_error("denoise" + w + " --input " + fx.p("tiny.png") + " --output " + fx.p("t.png") + " --device cpu",
                 fx.p("tiny.png") + ": image 3x3 is too small");
}

TEST_CASE("numbers beyond an int are refused, never wrapped around") {
    Fixture fx;
    const std::string d = " --weights " + fx.weights + " --input " + fx.image + " --output " + fx.p("o.png");
    expect_error("denoise" + d + " --tile-overlap 4294967297", "--tile-overlap must be at most 2147483647, got 4294967297");
    expect_error("denoise" + d + " --pd 99999999999999999999", "--pd must be at most");
    expect_error("train --data " + fx.dir.string() + " --out " + fx.p("r") + " --steps 2 --batch 4294967298",
                 "--batch must be at most");
    expect_error("train --data " + fx.dir.string() + " --out " + fx.p("r") + " --steps 99999999999999999999",
                 "--steps must be at most 9223372036854775807");
    // The seed is recorded exactly only up to 2^53; 8 x pd must stay an int.
    expect_error("train --data " + fx.dir.string() + " --out " + fx.p("r") + " --steps 2 --seed 9007199254740993",
                 "--seed must be at most 9007199254740992");
    expect_error("train --data " + fx.dir.string() + " --out " + fx.p("r") + " --steps 2 --pd 536870912",
                 "--pd must be at most 256");
    expect_error("denoise" + d + " --pd 300", "--pd must be at most 256");
    CHECK_FALSE(fs::exists(fx.p("o.png")));
}

TEST_CASE("weights with a NaN are refused naming the parameter; a checkpoint is shown by info, refused by denoise") {
    Fixture fx;
    SafetensorsFile f = load_safetensors(fx.weights);
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (auto& [name, t] : f.tensors) {
        Tensor c = t.clone();
        if (name == "patch_embed.proj.weight") c.data<float>()[5] = NAN;
        tensors.emplace_back(name, c);
    }
    save_safetensors(fx.p("nan.safetensors"), tensors, f.metadata);
    const std::string io = " --input " + fx.image + " --output " + fx.p("o.png") + " --device cpu";
    expect_error("denoise --weights " + fx.p("nan.safetensors") + io,
                 "parameter 'patch_embed.proj.weight' has a value that is not finite (nan at index 5)");
    CHECK_FALSE(fs::exists(fx.p("o.png")));

    const std::string data = small_data(fx);
    Run r = amsnet("train --data " + data + " --out " + fx.p("run") + " --preset tiny --steps 1 --batch 1 --crop 40 --device cpu");
    REQUIRE(r.code == 0);
    expect_error("denoise --weights " + fx.p("run/checkpoint.safetensors") + io, "is a training checkpoint");
    r = amsnet("info --weights " + fx.p("run/checkpoint.safetensors"));
    CHECK(r.code == 0);
    CHECK(r.out.find("amsnet-checkpoint-v1") != std::string::npos);
}

TEST_CASE("train keeps runs: no silent overwrite, --resume continues with the run's own options, Ctrl-C exits 130") {
    Fixture fx;
    const std::string data = small_data(fx), run = fx.p("run");
    const std::string start = "train --data " + data + " --out " + run + " --preset tiny --batch 1 --crop 40 --seed 3 --device cpu";
    Run r = amsnet(start + " --steps 2");
    INFO(r.out);
    REQUIRE(r.code == 0);
    const std::string model = read_bytes(run + "/model.safetensors");

    // The same command again, or another run into the same folder: refused, the run untouched.
    expect_error(start + " --steps 4", "already holds a run (checkpoint.safetensors); add --resume");
    CHECK(read_bytes(run + "/model.safetensors") == model);

    // --resume with nothing but the steps: the run's data, batch, crop, seed, preset.
    r = amsnet("train --out " + run + " --resume --steps 3 --device cpu");
    INFO(r.out);
    REQUIRE(r.code == 0);
    const json::Value rec = training_record(run + "/model.safetensors");
    CHECK(rec.at("batch").as_number() == 1);
    CHECK(rec.at("crop").as_number() == 40);
    CHECK(rec.at("seed").as_number() == 3);
    CHECK(rec.at("preset").as_string() == "tiny");
    CHECK(rec.at("data").at(0).as_string() == data);
    CHECK(load_safetensors(run + "/model.safetensors", false).metadata.at("step") == "3");
    // From another folder, with the data given relatively at the start and no length: the run's
    // own folder and planned steps (3), no warning.
    REQUIRE(amsnet("train --data data --out rel --preset tiny --batch 1 --crop 40 --device cpu --steps 2",
                   "cd " + fx.dir.string() + " &&").code == 0);
    r = amsnet("train --out ../rel --resume --device cpu --steps 3", "cd " + data + " &&");
    INFO(r.out);
    CHECK(r.code == 0);
    CHECK(r.out.find("other --data") == std::string::npos);
    r = amsnet("train --out " + fx.p("rel") + " --resume --device cpu");
    CHECK(r.code == 0);
    CHECK(r.out.find("already at step 3 of 3") != std::string::npos);
    // ...and a different value is refused, naming it.
    expect_error("train --out " + run + " --resume --steps 4 --batch 2", "was started with --batch 1, not 2");
    expect_error("train --out " + run + " --resume --steps 4 --lr 0.01", "was started with --lr 0.0001, not 0.01");
    expect_error("train --out " + run + " --resume --steps 4 --preset small", "--preset/--config \"tiny\"");

    expect_error("finetune --out " + run + " --resume --steps 4", "was made by amsnet train; resume it with that command");
    // The inference scheme stored with the model is the run's too.
    r = amsnet(start.substr(0, start.find(" --out ")) + " --out " + fx.p("scheme") +
               " --preset tiny --batch 1 --crop 40 --device cpu --steps 1 --infer-pd 3 --infer-branches 4 --infer-passes 2");
    REQUIRE(r.code == 0);
    r = amsnet("train --out " + fx.p("scheme") + " --resume --steps 2 --device cpu");
    REQUIRE(r.code == 0);
    const auto stored = load_safetensors(fx.p("scheme/model.safetensors"), false).metadata;
    CHECK(stored.at("inference_pd") == "3");
    CHECK(stored.at("inference_branches") == "4");
    CHECK(stored.at("inference_passes") == "2");
    expect_error("train --out " + fx.p("scheme") + " --resume --steps 3 --infer-pd 2", "was started with --infer-pd 3, not 2");

    // finetune --resume the same way.
    const std::string ft = "finetune --data " + data + " --weights " + run + "/model.safetensors --out " + fx.p("ft") +
                           " --batch 1 --crop 32 --pd 2 --device cpu";
    REQUIRE(amsnet(ft + " --steps 1").code == 0);
    r = amsnet("finetune --out " + fx.p("ft") + " --resume --steps 2 --device cpu");
    INFO(r.out);
    CHECK(r.code == 0);
    CHECK(training_record(fx.p("ft/model.safetensors")).at("pd").as_number() == 2);

    // A run that cannot start leaves no folder behind.
    expect_error("train --data " + data + " --out " + fx.p("never") + " --preset tiny --steps 1 --crop 80",
                 "smaller than --crop 80");
    CHECK_FALSE(fs::exists(fx.p("never")));
    expect_error("train --data " + data + " --out " + fx.p("never") + " --preset tiny --steps 1 --crop 40 --val-noisy " +
                     fx.p("nothere") + " --val-clean " + data,
                 "--val-noisy: '" + fx.p("nothere") + "' does not exist");
    CHECK_FALSE(fs::exists(fx.p("never")));
    expect_error("train --out " + fx.p("never") + " --resume --steps 2", "--resume: no checkpoint at");
    CHECK_FALSE(fs::exists(fx.p("never")));
    expect_error("train --data " + data + " --out " + fx.p("never") + " --steps 1 --crop 40 --weights " + fx.p("missing"),
                 "missing");
    CHECK_FALSE(fs::exists(fx.p("never")));

    // A cosine schedule's length is --steps: a resume without it is refused, the run untouched.
    const std::string cos = fx.p("cos");
    REQUIRE(amsnet(start.substr(0, start.find(" --out ")) + " --out " + cos +
                   " --preset tiny --batch 1 --crop 40 --device cpu --steps 2 --lr-schedule cosine").code == 0);
    const std::string cos_ckpt = read_bytes(cos + "/checkpoint.safetensors");
    expect_error("train --out " + cos + " --resume --max-minutes 0.01", "--lr-schedule cosine needs --steps");
    CHECK(read_bytes(cos + "/checkpoint.safetensors") == cos_ckpt);
    // A step that diverges (images near float32's limit make the loss NaN) saves nothing: the
    // checkpoint stays the last good one.
    fs::create_directories(fx.dir / "extreme");
    save_npy(fx.p("extreme/a.npy"), Tensor::full({48, 48, 3}, 3e38f));
    const std::string good = read_bytes(run + "/checkpoint.safetensors");
    expect_error("train --out " + run + " --resume --steps 5 --data " + fx.p("extreme") + " --device cpu",
                 "training diverged");
    CHECK(read_bytes(run + "/checkpoint.safetensors") == good);

    // A folder with only a log.csv (a run that failed before its first save) may be started again.
    fs::create_directories(fx.dir / "failed");
    std::ofstream(fx.p("failed/log.csv")) << "step,loss\n";
    CHECK(amsnet(start.substr(0, start.find(" --out ")) + " --out " + fx.p("failed") +
                 " --preset tiny --batch 1 --crop 40 --device cpu --steps 1").code == 0);

    // Ctrl-C: saved, and exit status 130 so that `amsnet train ... && amsnet finetune ...` stops;
    // SIGTERM (kill, timeout, a batch scheduler's end of job) the same, 143.
    const std::string forever = start.substr(0, start.find(" --out ")) + " --preset tiny --batch 1 --crop 40 --device cpu "
                                "--steps 100000000 --log-every 1 --save-every 0 --out ";
    for (int sig : {SIGINT, SIGTERM}) {
        const std::string dir = fx.p("stop" + std::to_string(sig));
        const ams::test::SignalledRun s = ams::test::amsnet_signalled(forever + dir, sig, "step 3");
        INFO(sig, ": ", s.out);
        CHECK(s.code == 128 + sig);
        CHECK(s.out.find("stopping after the step in progress") != std::string::npos);
        CHECK(s.out.find("interrupted at step") != std::string::npos);
        CHECK(fs::exists(dir + "/checkpoint.safetensors"));
        CHECK(amsnet("train --out " + dir + " --resume --steps 5 --log-every 1").code == 0);  // and it goes on
    }
    // A second Ctrl-C a while after the first quits at once, as without the handler: the small
    // model's steps at batch 8, crop 160 take seconds here. (A machine that finishes the step and
    // saves within the 1.3 s has nothing left to check.)
    fs::create_directories(fx.dir / "big");
    fs::copy_file(fx.image, fx.dir / "big" / "photo.png");
    const std::string slow = "train --data " + fx.p("big") + " --preset small --batch 8 --crop 160 --device cpu "
                             "--steps 1000 --log-every 1 --save-every 0 --out ";
    // The same signal twice at once (GNU timeout signals the child, then its group; a launcher
    // forwards the terminal's Ctrl-C that the run also got): still one stop, saved.
    for (int sig : {SIGINT, SIGTERM}) {
        const std::string dir = fx.p("twice" + std::to_string(sig));
        const ams::test::SignalledRun s = ams::test::amsnet_signalled(slow + dir, sig, "step 1", 0.1);
        INFO(sig, ": ", s.out);
        CHECK(s.second_sent);
        CHECK(s.code == 128 + sig);
        CHECK(s.out.find("interrupted at step") != std::string::npos);
        CHECK(fs::exists(dir + "/checkpoint.safetensors"));
    }
    {
        const ams::test::SignalledRun s = ams::test::amsnet_signalled(slow + fx.p("quit"), SIGINT, "step 1", 1.3);
        INFO(s.out);
        CHECK(s.code == 128 + SIGINT);
        if (s.second_sent && s.out_at_second.find("interrupted at step") == std::string::npos) {
            CHECK(s.out.find("interrupted at step") == std::string::npos);
            CHECK_FALSE(fs::exists(fx.p("quit/checkpoint.safetensors")));
        } else {
            MESSAGE("the step and the save took less than 1.3 s: the second Ctrl-C was not sent");
        }
    }
    // Started ignoring SIGINT (a shell script's background job): it stays ignored, as the shell
    // meant; SIGTERM still stops and saves.
    const ams::test::SignalledRun s =
        ams::test::amsnet_signalled(forever + fx.p("sigign"), SIGINT, "step 3", 1.0, SIGTERM, true);
    INFO(s.out);
    CHECK(s.second_sent);
    CHECK(s.code == 128 + SIGTERM);
    CHECK(s.out.find("interrupted at step") != std::string::npos);
    CHECK(fs::exists(fx.p("sigign/checkpoint.safetensors")));
}

TEST_CASE("options that cannot work together, or do nothing, are errors") {
    Fixture fx;
    const std::string t = "train --data " + small_data(fx) + " --out " + fx.p("r") + " --steps 1 --crop 40";
    expect_error(t + " --preset tiny --config " + fx.p("c.json"), "give --preset or --config, not both");
    expect_error(t + " --weights " + fx.weights + " --preset tiny", "--weights brings its own model");
    expect_error(t + " --config " + fx.dir.string(), "is a folder, not a JSON file");
    expect_error(t + " --preset tiny --val-every 3", "--val-every needs --val-noisy and --val-clean");
    expect_error(t + " --preset tiny --val-noisy " + fx.dir.string(), "--val-noisy needs --val-clean");
    expect_error("finetune --out " + fx.p("r"), "--data is required (see amsnet finetune --help)");
    expect_error("finetune --data " + small_data(fx) + " --weights " + fx.weights + " --out " + fx.p("r") +
                     " --mask-p 0.3",  // train's: fine-tuning hides pixels by its branches
                 "unknown option --mask-p");
    CHECK_FALSE(fs::exists(fx.p("r")));
    // The --config that info prints trains that architecture.
    Run info = amsnet("info --weights " + fx.weights);
    const size_t at = info.out.find("\nconfig: ");
    REQUIRE(at != std::string::npos);
    std::ofstream(fx.p("c.json")) << info.out.substr(at + 9, info.out.find('\n', at + 1) - at - 9);
    Run r = amsnet(t + " --config " + fx.p("c.json") + " --batch 1 --device cpu");
    INFO(r.out);
    CHECK(r.code == 0);
    CHECK(load_safetensors(fx.p("r/model.safetensors"), false).metadata.at("config") ==
          load_safetensors(fx.weights, false).metadata.at("config"));
}

TEST_CASE("a stored inference scheme out of range is an error naming it, never wrapped") {
    Fixture fx;
    SafetensorsFile f = load_safetensors(fx.weights);
    f.metadata["inference_pd"] = "536870912";
    save_safetensors(fx.p("bad.safetensors"), f.tensors, f.metadata);
    expect_error("denoise --weights " + fx.p("bad.safetensors") + " --input " + fx.image + " --output " + fx.p("o.png"),
                 "inference_pd = '536870912' is not valid (1 to 256)");
    // Counts of network runs: a typo is an error, not a run of days (nor an int that wraps).
    f.metadata.erase("inference_pd");
    f.metadata["inference_passes"] = "2147483647";
    save_safetensors(fx.p("bad.safetensors"), f.tensors, f.metadata);
    const std::string d = "denoise --weights " + fx.weights + " --input " + fx.image + " --output " + fx.p("o.png");
    expect_error("denoise --weights " + fx.p("bad.safetensors") + " --input " + fx.image + " --output " + fx.p("o.png"),
                 "inference_passes = '2147483647' is not valid (1 to 1024)");
    Run info = amsnet("info --weights " + fx.p("bad.safetensors"));  // shows it, and says denoise will not
    CHECK(info.code == 0);
    CHECK(info.out.find("warning: weights metadata inference_passes = '2147483647' is not valid (1 to 1024): denoise "
                        "refuses these weights unless the option is given") != std::string::npos);
    expect_error(d + " --branches 5000", "--branches must be at most 1024, got 5000");
    expect_error(d + " --passes 1025", "--passes must be at most 1024, got 1025");
    expect_error(d + " --r3 2147483647", "--r3 must be at most 1024");
    expect_error("finetune --data " + fx.dir.string() + " --weights " + fx.weights + " --out " + fx.p("ft") +
                     " --branches 100000",
                 "--branches must be at most 1024");
    CHECK_FALSE(fs::exists(fx.p("o.png")));
}

TEST_CASE("amsnet --version names the version and the source revision") {
    Run r = amsnet("--version");
    CHECK(r.code == 0);
    CHECK(r.out.rfind("amsnet 0.", 0) == 0);
    CHECK(r.out.find("CUDA backend") != std::string::npos);
}

TEST_CASE("eval names the pair that fails, warns of pairs whose names differ, refuses options it would ignore") {
    Fixture fx;
    const Tensor img = load_image(fx.image);
    fs::create_directories(fx.dir / "pred");
    fs::create_directories(fx.dir / "clean");
    auto crop = [&](int64_t h, int64_t w) { return img.narrow(2, 0, h).narrow(3, 0, w).contiguous(); };
    save_image(fx.p("pred/img1.png"), crop(24, 20));
    save_image(fx.p("pred/img3.png"), crop(24, 20));
    save_image(fx.p("clean/img1.png"), crop(24, 20));
    save_image(fx.p("clean/img2.png"), crop(24, 20));
    // img2 is missing from pred: img3 is scored against img2, which the warning names.
    Run r = amsnet("eval --pred " + fx.p("pred") + " --clean " + fx.p("clean"));
    INFO(r.out);
    CHECK(r.code == 0);
    CHECK(r.out.find("1 of 2 pairs have names that do not correspond") != std::string::npos);
    CHECK(r.out.find("'" + fx.p("pred/img3.png") + "' with '" + fx.p("clean/img2.png") + "'") != std::string::npos);
    // Pairs told apart by their common prefix and suffix (SIDD's NOISY_k / GT_k) raise no warning.
    fs::rename(fx.p("pred/img3.png"), fx.p("pred/img2.png"));
    for (const char* d : {"pred", "clean"})
        for (const char* f : {"img1", "img2"})
            fs::rename(fx.p(std::string(d) + "/" + f + ".png"),
                       fx.p(std::string(d) + "/" + (d[0] == 'p' ? "NOISY_" : "GT_") + (f + 3) + "_x.png"));
    r = amsnet("eval --pred " + fx.p("pred") + " --clean " + fx.p("clean"));
    CHECK(r.code == 0);
    CHECK(r.out.find("warning") == std::string::npos);
    // The same numbers with a marker in the middle (SIDD-Medium's 0001_NOISY_SRGB_010 / 0001_GT_SRGB_010):
    // no warning; a shared leading digit is not cut off (img12, img13 against img02, img03: warned).
    auto rename_all = [&](const char* d, const std::vector<std::string>& to) {
        std::vector<fs::path> from;
        for (const auto& e : fs::directory_iterator(fx.dir / d)) from.push_back(e.path());
        std::sort(from.begin(), from.end());
        for (size_t i = 0; i < from.size(); ++i) fs::rename(from[i], fx.dir / d / (to[i] + ".png"));
    };
    rename_all("pred", {"0001_NOISY_SRGB_010", "0002_NOISY_SRGB_011"});
    rename_all("clean", {"0001_GT_SRGB_010", "0002_GT_SRGB_011"});
    r = amsnet("eval --pred " + fx.p("pred") + " --clean " + fx.p("clean"));
    CHECK(r.out.find("warning") == std::string::npos);
    rename_all("pred", {"img12", "img13"});
    rename_all("clean", {"img02", "img03"});
    r = amsnet("eval --pred " + fx.p("pred") + " --clean " + fx.p("clean"));
    CHECK(r.out.find("2 of 2 pairs have names that do not correspond") != std::string::npos);
    // An image too small for SSIM's window: the error names the pair, the size as width x height.
    save_image(fx.p("p.png"), crop(10, 30));
    expect_error("eval --pred " + fx.p("p.png") + " --clean " + fx.p("p.png"),
                 "'" + fx.p("p.png") + "' against '" + fx.p("p.png") + "': ssim: image 30x10 is smaller");
    // Options of denoising do nothing when nothing is denoised.
    expect_error("eval --pred " + fx.p("pred") + " --clean " + fx.p("clean") + " --pd 3",
                 "--pd applies to denoising with --weights --noisy; it does nothing with --pred");
    expect_error("eval --pred " + fx.p("pred") + " --clean " + fx.p("clean") + " --noisy " + fx.p("pred"),
                 "--noisy is denoised with --weights or --gaussian");
    expect_error("eval --gaussian 1 --noisy " + fx.p("pred") + " --clean " + fx.p("clean") + " --passes 2",
                 "it does nothing with --gaussian");
}

TEST_CASE("a run on a folder whose name is not UTF-8 resumes with --data given again") {
    Fixture fx;
    const std::string latin1 = fx.p("caf\xE9");  // a Latin-1 name: JSON (the run's record) cannot hold it
    fs::create_directories(latin1);
    fs::copy_file(small_data(fx) + "/0.png", latin1 + "/0.png");
    const std::string run = fx.p("run");
    Run r = amsnet("train --data '" + latin1 + "' --out " + run + " --preset tiny --batch 1 --crop 40 --steps 2 --device cpu");
    REQUIRE(r.code == 0);
    expect_error("train --out " + run + " --resume --steps 3", "whose name was not UTF-8 and could not be kept: give --data again");
    r = amsnet("train --data '" + latin1 + "' --out " + run + " --resume --steps 3");
    INFO(r.out);
    CHECK(r.code == 0);
    CHECK(r.out.find("other --data") == std::string::npos);
}
