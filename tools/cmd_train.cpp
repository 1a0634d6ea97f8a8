// amsnet train / amsnet finetune.
#include <climits>
#include <cmath>
#include <cstdio>
#include <limits>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <type_traits>

#include "engine/device.h"
#include "engine/json.h"
#include "engine/safetensors.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/common.h"
#include "tools/denoise_options.h"
#include "train/trainer.h"

namespace ams::cli {

namespace {

// pd_default/infer defaults of nullptr mean "no default": finetune takes them from the weights.
void add_common(Args& a, const char* batch_default, const char* pd_default, const char* infer_pd_default,
                const char* infer_branches_default) {
    a.option("data", "DIR", "folder of noisy training images (searched recursively)", "", true);
    a.option("include", "TEXT", "use only files whose name contains TEXT (e.g. _real for PolyU's noisy images)");
    a.option("image-cache", "GiB", "host memory for decoded training images (8-bit RGB: 3 bytes a pixel); images "
             "beyond it are decoded again whenever drawn, in parallel", "2");
    a.option("out", "DIR", "run folder: model.safetensors, checkpoint.safetensors, log.csv");
    a.option("steps", "N", "total training steps (0 = until --max-minutes)", "0");
    a.option("max-minutes", "M", "stop and save after this many minutes of this session (0 = no limit; a --resume "
             "session counts its own)", "0");
    a.option("batch", "B", "images per step", batch_default);
    a.option("crop", "N", "random crop size (a multiple of 8 * --pd)", "160");
    a.option("pd", "S", "pixel-downsampling stride", pd_default ? pd_default : "");
    a.option("infer-pd", "S", "inference PD stride stored with the model (validation and denoise default)",
             infer_pd_default ? infer_pd_default : "");
    a.option("infer-branches", "K", "inference mask branches stored with the model",
             infer_branches_default ? infer_branches_default : "");
    a.option("infer-passes", "M", "inference passes (masks averaged) stored with the model; validation uses one",
             "1");
    a.option("lr", "LR", "AdamW learning rate (betas 0.9, 0.999; weight decay 0)", "1e-4");
    a.option("lr-schedule", "S", "constant (SPEC) or cosine (decays to 0 at --steps)", "constant");
    a.option("ema", "D", "keep a moving average of the weights with this decay (e.g. 0.99) and save it as the model (0 = off)",
             "0");
    a.option("seed", "N", "seed of crops, flips, masks and initial weights", "42");
    a.option("device", "D", "auto, cpu or cuda", "auto");
    add_precision_option(a);
    a.option("recompute", "R", "auto, on or off: recompute each block's cheap intermediates in backward instead of "
             "keeping them (a third less training memory for a few more memory-bound kernels; auto: only when a "
             "step would not fit otherwise)", "auto");
    a.option("max-memory", "GiB", "memory training may use (default: what the device has free): checked before the "
             "first step, and on the GPU a hard limit on what the engine allocates there");
    a.option("save-every", "N", "write model and checkpoint every N steps (0 = only at the end)", "500");
    a.option("log-every", "N", "progress line and log.csv row every N steps", "10");
    a.flag("resume", "continue from DIR/checkpoint.safetensors exactly where it stopped, with the run's own options "
           "(--data, --batch, --lr, ... and the planned --steps are taken from it when not given; a different "
           "--batch, --lr, ... is an error)");
    a.option("val-noisy", "DIR", "noisy validation images (scored with the AMSNet-B inference scheme)");
    a.option("val-clean", "DIR", "their clean references (paired by sorted order)");
    a.option("val-every", "N", "validate every N steps (default with --val-noisy: every --save-every steps)");
    a.option("val-max", "N", "validation images used", "4");
}

TrainOptions read_common(const Args& a) {
    TrainOptions o;
    o.data = a.all("data");
    AMS_CHECK(!o.data.empty() || a.on("resume"), "--data is required (see amsnet ", a.command(), " --help)");
    o.include = a.get("include");
    o.image_cache = a.number("image-cache", 0, 1e6) * (double)(1ull << 30);
    o.out = a.require("out");
    o.steps = a.integer("steps", 0, LLONG_MAX);
    o.max_minutes = a.number("max-minutes", 0, 1e7);
    o.batch = (int)a.integer("batch", 1);
    o.crop = (int)a.integer("crop", 8);
    if (!a.get("pd").empty()) o.pd = (int)a.integer("pd", 1, kMaxPd);
    if (!a.get("infer-pd").empty()) o.val_pd = (int)a.integer("infer-pd", 1, kMaxPd);
    if (!a.get("infer-branches").empty()) o.val_branches = (int)a.integer("infer-branches", 2, kMaxRuns);
    o.val_passes = (int)a.integer("infer-passes", 1, kMaxRuns);
    o.lr = a.number("lr", 0, 1);
    o.lr_schedule = a.get("lr-schedule");
    AMS_CHECK(o.lr_schedule == "constant" || o.lr_schedule == "cosine", "--lr-schedule must be constant or cosine, got '",
              o.lr_schedule, "'");
    AMS_CHECK(o.lr_schedule == "constant" || o.steps > 0, "--lr-schedule cosine needs --steps (the length of the decay)");
    o.ema = a.number("ema", 0, 0.999999);
    o.seed = (uint64_t)a.integer("seed", 0, 1LL << 53);  // recorded exactly in the run's JSON (a double)
    o.device = parse_device(a.get("device"));
    apply_precision(a, o.device);
    o.precision_given = a.given("precision");
    o.recompute = parse_recompute(a.get("recompute"));
    if (a.given("max-memory")) o.max_memory = a.number("max-memory", 0.01, 1e6) * (double)(1ull << 30);
    apply_memory_limit(o.max_memory, o.device);
    o.save_every = a.integer("save-every", 0, LLONG_MAX);
    o.log_every = a.integer("log-every", 1, LLONG_MAX);
    o.resume = a.on("resume");
    o.val_noisy = a.get("val-noisy");
    o.val_clean = a.get("val-clean");
    AMS_CHECK(o.val_noisy.empty() == o.val_clean.empty(), o.val_noisy.empty() ? "--val-clean needs --val-noisy"
                                                                              : "--val-noisy needs --val-clean");
    AMS_CHECK(!a.given("val-every") || !o.val_noisy.empty(), "--val-every needs --val-noisy and --val-clean");
    if (a.given("val-every")) o.val_every = a.integer("val-every", 0, LLONG_MAX);
    else if (!o.val_noisy.empty()) o.val_every = o.save_every > 0 ? o.save_every : 500;
    o.val_max = (int)a.integer("val-max", 1);
    return o;
}

// A path or text from a run's record. JSON holds only UTF-8, so a name that was not (a Latin-1
// folder name) was recorded with U+FFFD in place of its bytes: that one must be given again.
std::string recorded_name(const std::string& v, const char* option, const std::string& path) {
    AMS_CHECK(v.find("\xEF\xBF\xBD") == std::string::npos, "--resume: ", path, " records --", option, " as '", v,
              "', whose name was not UTF-8 and could not be kept: give --", option, " again");
    return v;
}

// --resume: the options not given on the command line are the run's own, from its checkpoint's
// record (train() refuses given ones that differ; the length may change). So `--out RUN --resume`
// is enough: it goes on to the run's planned --steps.
void adopt_run_options(const Args& a, TrainOptions& o) {
    const std::string path = (std::filesystem::path(o.out) / "checkpoint.safetensors").string();
    if (!o.resume) return;
    std::error_code ec;
    AMS_CHECK(std::filesystem::exists(path, ec), "--resume: no checkpoint at '", path, "'");
    const auto meta = load_safetensors(path, false).metadata;
    const auto it = meta.find("training");
    if (it == meta.end()) return;
    const json::Value t = json::parse(it->second, path + " (training metadata)");
    auto take = [&](const char* option, const char* key, auto& field) {
        const json::Value* v = t.find(key);
        if (!v || a.given(option)) return;
        using T = std::decay_t<decltype(field)>;
        if constexpr (std::is_same_v<T, std::string>) {
            if (v->is_string()) field = recorded_name(v->as_string(), option, path);
        } else if (v->is_number()) {
            const double x = v->as_number();
            if constexpr (std::is_integral_v<T>)  // a damaged record must not wrap into a valid-looking int
                AMS_CHECK(x == std::floor(x) && x >= 0 && x <= (double)std::numeric_limits<T>::max() &&
                              x <= (double)(1LL << 53),
                          path, ": the run's record has ", key, " = ", x, ", not a valid count");
            field = static_cast<T>(x);
        }
    };
    take("include", "include", o.include);
    take("batch", "batch", o.batch);
    take("crop", "crop", o.crop);
    take("pd", "pd", o.pd);
    take("lr", "lr", o.lr);
    take("lr-schedule", "lr_schedule", o.lr_schedule);
    take("ema", "ema", o.ema);
    take("seed", "seed", o.seed);
    if (!a.given("steps") && !a.given("max-minutes")) take("steps", "steps", o.steps);  // to the planned end
    take("infer-pd", "infer_pd", o.val_pd);
    take("infer-branches", "infer_branches", o.val_branches);
    take("infer-passes", "infer_passes", o.val_passes);
    take("weights", "init_weights", o.init_weights);
    if (o.finetune) {  // options only finetune has
        take("lambda", "lambda", o.lambda);
        take("branches", "branches", o.branches);
        take("passes", "passes", o.passes);
        take("chroma-weight", "chroma_weight", o.chroma_weight);
    }
    if (!o.finetune) take("mask-p", "mask_p", o.mask_p);
    if (!o.finetune && !a.given("preset") && !a.given("config")) take("preset", "preset", o.preset);
    if (const json::Value* d = t.find("data"); d && d->is_array() && o.data.empty())
        for (const json::Value& v : d->as_array())
            if (v.is_string()) o.data.push_back(recorded_name(v.as_string(), "data", path));
}

std::string read_file(const std::string& path) {
    AMS_CHECK(!is_directory(path), "--config: '", path, "' is a folder, not a JSON file");
    std::ifstream f(path);
    AMS_CHECK(f, "--config: cannot read '", path, "'");
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

}  // namespace

int cmd_train(int argc, char** argv) {
    Args a("train", "--data DIR --out RUN [options]",
           "Trains AMSNet-B from noisy images only: random crops, pixel-downsampling (stride --pd),\n"
           "half of each sub-image's pixels hidden, masked L1 on the hidden pixels (SPEC Eq. 4).\n"
           "Ctrl-C (or SIGTERM) stops cleanly and saves; --resume continues exactly.");
    add_common(a, "4", "5", "2", "2");
    a.option("mask-p", "P", "fraction of pixels hidden per step (SPEC 0.5)", "0.5");
    a.option("preset", "P", "model size: restormer (SPEC, 26.1M parameters), small (CPU in minutes), tiny (tests)", "restormer");
    a.option("config", "FILE.json", "Restormer configuration instead of --preset: a JSON object with the reference's "
             "names (dim, num_blocks, num_refinement_blocks, heads, ffn_expansion_factor, bias, layernorm_type; the "
             "\"config\" entry of `amsnet info --weights W` shows one)");
    a.option("weights", "W", "start from these weights instead of a random initialisation (their model and stored "
             "inference scheme; not with --preset or --config)");
    if (!a.parse(argc, argv, 2)) return 0;
    TrainOptions o = read_common(a);
    o.mask_p = a.number("mask-p", 1e-3, 0.999);
    AMS_CHECK(!(a.given("preset") && a.given("config")), "give --preset or --config, not both");
    AMS_CHECK(!a.given("weights") || !(a.given("preset") || a.given("config")),
              "--weights brings its own model: leave out --preset and --config");
    o.preset = a.get("preset");
    o.model = preset_config(o.preset);
    if (a.given("config")) {
        std::string path = a.get("config");
        o.model = RestormerConfig::from_json(json::parse(read_file(path), path), path);
        o.preset = "config:" + path;
    }
    o.init_weights = a.get("weights");
    if (!o.init_weights.empty()) {  // the weights' own inference scheme, unless given
        std::map<std::string, std::string> meta = load_safetensors(o.init_weights, false).metadata;
        if (!a.given("infer-pd")) stored_pd(meta, o.val_pd);
        if (!a.given("infer-branches")) stored_branches(meta, o.val_branches);
        if (!a.given("infer-passes")) stored_passes(meta, o.val_passes);
    }
    adopt_run_options(a, o);
    AMS_CHECK(!o.data.empty(), "--data is required (see amsnet ", a.command(), " --help)");
    train(o);
    // Saved; 130 (128 + SIGINT) or 143 (SIGTERM) so that `train && ...` stops.
    return training_interrupted() ? 128 + training_interrupted() : 0;
}

int cmd_finetune(int argc, char** argv) {
    Args a("finetune", "--data DIR --weights W --out RUN [options]",
           "Fine-tunes AMSNet-B into AMSNet-P: every pixel restored by the k-branch inference scheme\n"
           "(gradients through all branches), loss = |I_DN - I_N|_1 + lambda * TV(I_DN) (SPEC Eqs. 9-10).\n"
           "--pd and --branches default to the inference scheme stored with --weights (else 2 and 2), so\n"
           "the fine-tuning restores exactly as denoise will; --infer-pd/--infer-branches default to them\n"
           "(and --infer-passes to the stored passes).");
    add_common(a, "2", nullptr, nullptr, nullptr);
    a.option("weights", "W", "AMSNet-B weights to start from");
    a.option("lambda", "L", "weight of the smoothness prior (SPEC text 0.01, its ablation 0.1)", "0.01");
    a.option("branches", "K", "mask branches of the restoration");
    a.option("passes", "M", "restorations averaged into I_DN (fresh masks and a flip each, as denoise --passes)", "1");
    a.option("chroma-weight", "A",
             "end by calibrating a chroma smoothing stored with the model: the Gaussian sigma (0 to 4 px) that "
             "minimises |I_DN - I_N|_1 + lambda (TV(Y) + A (TV(Cb) + TV(Cr))) on centre crops of 32 --data "
             "images (no clean image); 0 = none",
             "0");
    a.flag("calibrate-only", "no training: calibrate --weights (with --chroma-weight, and --lambda or the one "
                             "they were fine-tuned with) for the inference scheme (--infer-* or theirs) and write "
                             "RUN/model.safetensors; the training options are not used");
    if (!a.parse(argc, argv, 2)) return 0;
    TrainOptions o = read_common(a);
    o.finetune = true;
    o.chroma_weight = a.number("chroma-weight", 0, 1e6);
    o.calibrate_only = a.on("calibrate-only");
    o.lambda_given = a.given("lambda");
    o.init_weights = a.given("resume") ? a.get("weights") : a.require("weights");
    o.lambda = a.number("lambda", 0, 1e6);
    // The scheme being fine-tuned: flags, else the one stored with the B weights, else SPEC's 2/2.
    o.pd = 2;
    o.branches = 2;
    // On --resume without --weights, the run's own model file records the scheme it fine-tunes.
    std::string scheme_from = o.init_weights;
    if (scheme_from.empty() && o.resume) scheme_from = o.out + "/model.safetensors";
    if (!scheme_from.empty() && (!o.resume || std::filesystem::exists(scheme_from))) {
        std::map<std::string, std::string> meta = load_safetensors(scheme_from, false).metadata;
        stored_pd(meta, o.pd);
        stored_branches(meta, o.branches);
        if (!a.given("infer-passes")) stored_passes(meta, o.val_passes);
    }
    if (!a.get("pd").empty()) o.pd = (int)a.integer("pd", 1, kMaxPd);
    if (a.given("branches")) o.branches = (int)a.integer("branches", 2, kMaxRuns);
    o.passes = (int)a.integer("passes", 1, kMaxRuns);
    o.val_pd = a.given("infer-pd") ? (int)a.integer("infer-pd", 1, kMaxPd) : o.pd;
    o.val_branches = a.given("infer-branches") ? (int)a.integer("infer-branches", 2, kMaxRuns) : o.branches;
    adopt_run_options(a, o);
    AMS_CHECK(!o.data.empty(), "--data is required (see amsnet ", a.command(), " --help)");
    train(o);
    return training_interrupted() ? 128 + training_interrupted() : 0;
}

}  // namespace ams::cli
