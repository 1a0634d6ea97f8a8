#include "train/trainer.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/image_io.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "engine/params.h"
#include "engine/precision.h"
#include "engine/safetensors.h"
#include "engine/timer.h"
#include "models/amsnet.h"
#include "models/denoise.h"
#include "models/model_file.h"
#include "train/chroma.h"
#include "train/dataset.h"
#include "train/step_memory.h"
#include "train/metrics.h"
#ifdef AMS_HAVE_CUDA
#include "kernels/cuda/runtime.h"
#endif

namespace fs = std::filesystem;

namespace ams {

std::vector<std::pair<std::string, Tensor>> checkpoint_weights(const SafetensorsFile& ckpt) {
    std::vector<std::pair<std::string, Tensor>> named;
    for (const auto& [n, t] : ckpt.tensors)
        if (n.rfind("optim.", 0) != 0) named.emplace_back(n, t);
    return named;
}

RestormerConfig preset_config(const std::string& name) {
    RestormerConfig c;
    if (name == "restormer") return c;
    if (name == "small") {
        c.dim = 16;
        c.num_blocks = {1, 2, 2, 2};
        c.num_refinement_blocks = 1;
        return c;
    }
    if (name == "tiny") {
        c.dim = 8;
        c.num_blocks = {1, 1, 1, 1};
        c.num_refinement_blocks = 1;
        return c;
    }
    AMS_FAIL("--preset must be restormer, small or tiny, got '", name, "'");
}

namespace {

// The signal that stopped the run (SIGINT: Ctrl-C; SIGTERM: kill, timeout, a batch scheduler), 0 if none.
std::atomic<int> g_interrupted{0};

// When the first signal came (CLOCK_MONOTONIC seconds; only the handler writes it).
std::atomic<double> g_first_signal_s{0};

double monotonic_seconds() {  // clock_gettime is async-signal-safe
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// The first signal asks the loop to stop after the step in progress and save. A second Ctrl-C
// (the user does not want to wait) ends the process at once, as it would without the handler;
// the files on disk are whole either way (each is written to a temporary name and renamed). Not
// one within a second of the first: GNU timeout sends its signal to the child and then to the
// group, and a launcher may forward the terminal's Ctrl-C that the child also got. A repeated
// SIGTERM never quits: whoever sends it follows up with SIGKILL if the save takes too long.
extern "C" void on_stop_signal(int sig) {
    const double now = monotonic_seconds();
    const int first = g_interrupted.exchange(sig);  // one of two racing signals is the first
    if (first != 0) {
        g_interrupted = first;
        if (sig == SIGINT && now - g_first_signal_s.load() >= 1.0) {
            std::signal(sig, SIG_DFL);
            std::raise(sig);
        }
        return;
    }
    g_first_signal_s = now;
    static const char on_int[] = "\nstopping after the step in progress to save the run (Ctrl-C again to quit "
                                 "without saving)\n";
    static const char on_term[] = "\nstopping after the step in progress to save the run\n";
    const bool interactive = sig == SIGINT;
    ssize_t ignored = write(2, interactive ? on_int : on_term, interactive ? sizeof on_int - 1 : sizeof on_term - 1);
    (void)ignored;  // write, not stdio: async-signal-safe
}

// Installs on_stop_signal for SIGINT and SIGTERM while training; puts the old handlers back. A
// signal the process was started ignoring stays ignored, as in Python: a shell's background job
// ignores SIGINT so that Ctrl-C at the terminal does not reach it (stop it with kill: SIGTERM).
// Before the steps (loading, probing) the default action ends the process: nothing to save yet.
class StopSignals {
public:
    StopSignals() {
        g_interrupted = 0;
        old_int_ = catch_unless_ignored(SIGINT);
        old_term_ = catch_unless_ignored(SIGTERM);
    }
    ~StopSignals() {
        std::signal(SIGINT, old_int_);
        std::signal(SIGTERM, old_term_);
    }
    StopSignals(const StopSignals&) = delete;
    StopSignals& operator=(const StopSignals&) = delete;

private:
    static void (*catch_unless_ignored(int sig))(int) {
        void (*old)(int) = std::signal(sig, on_stop_signal);
        if (old == SIG_IGN) std::signal(sig, SIG_IGN);
        return old;
    }
    void (*old_int_)(int);
    void (*old_term_)(int);
};

json::Value options_json(const TrainOptions& o) {
    json::Value v = json::Value::object();
    // Paths as absolute ones: --resume finds them from any folder.
    auto absolute = [](const std::string& p) { return fs::absolute(p).lexically_normal().string(); };
    json::Value data = json::Value::array();
    for (const auto& d : o.data) data.push_back(absolute(d));
    v["data"] = data;
    v["include"] = o.include;
    if (!o.finetune && o.init_weights.empty()) v["preset"] = o.preset;  // else the model is the weights'
    if (!o.init_weights.empty()) v["init_weights"] = absolute(o.init_weights);
    if (o.steps > 0) v["steps"] = o.steps;  // the planned length: --resume without one goes on to it
    v["batch"] = o.batch;
    v["crop"] = o.crop;
    v["pd"] = o.pd;
    if (!o.finetune) v["mask_p"] = o.mask_p;
    v["lr"] = o.lr;
    v["lr_schedule"] = o.lr_schedule;
    if (o.ema > 0) v["ema"] = o.ema;
    v["seed"] = (double)o.seed;
    v["mode"] = o.finetune ? "finetune" : "train";
    if (o.chroma_weight > 0) v["chroma_weight"] = o.chroma_weight;
    v["infer_pd"] = o.val_pd;  // the scheme stored with the model (and validated with)
    v["infer_branches"] = o.val_branches;
    v["infer_passes"] = o.val_passes;
    if (o.finetune) {
        v["lambda"] = o.lambda;
        v["branches"] = o.branches;
        v["passes"] = o.passes;
    }
    return v;
}

struct Validation {
    std::vector<Tensor> noisy, clean;
    std::vector<std::string> names;  // the noisy files, for messages
};

Validation load_validation(const TrainOptions& o) {
    Validation v;
    if (o.val_noisy.empty()) return v;
    AMS_CHECK(!o.val_clean.empty(), "--val-noisy needs --val-clean");
    auto listed = [](const std::string& dir, const char* option) {
        try {
            return list_images(dir);
        } catch (const Error& e) {
            throw Error(str(option, ": ", e.message()));
        }
    };
    auto n = listed(o.val_noisy, "--val-noisy"), c = listed(o.val_clean, "--val-clean");
    AMS_CHECK(n.size() == c.size() && !n.empty(), "--val-noisy has ", n.size(), " images, --val-clean ", c.size());
    for (size_t i = 0; i < n.size() && (int)i < o.val_max; ++i) {
        v.noisy.push_back(load_image(n[i]));
        v.names.push_back(n[i]);
        v.clean.push_back(load_image(c[i]));
        AMS_CHECK(v.noisy.back().shape() == v.clean.back().shape(), "validation pair '", n[i], "' / '", c[i],
                  "' differ in size");
    }
    return v;
}

// Validation runs between steps, in the memory a step may use (`budget` bytes): whole images when
// they fit, else tiles of the size the largest needs. Fixed before the first step, so that every
// validation of the run scores on one basis (tiled and whole-image scores differ slightly).
int64_t validation_tile(const Restormer& net, const Validation& v, const DenoiseOptions& scheme, double budget) {
    int64_t tile = 0;
    for (size_t i = 0; i < v.noisy.size(); ++i) {
        int64_t t = 0;
        try {
            t = auto_tile(net, v.noisy[i].dim(2), v.noisy[i].dim(3), scheme, budget);
        } catch (const Error& e) {
            throw Error(str("validation image '", v.names[i], "': ", e.message()));
        }
        if (t > 0) tile = tile == 0 ? t : std::min(tile, t);
    }
    return tile;
}

// Scores with the stored inference scheme (one pass, seed 0), in tiles of scheme.tile.
ImageScore validate(const Restormer& net, const Validation& v, const DenoiseOptions& scheme) {
    ImageScore mean{0, 0};
    for (size_t i = 0; i < v.noisy.size(); ++i) {
        Tensor d = denoise_image(net, v.noisy[i].to(net.params().device()), scheme);
        ImageScore s = score_images(d, v.clean[i]);
        mean.psnr += s.psnr / v.noisy.size();
        mean.ssim += s.ssim / v.noisy.size();
    }
    return mean;
}

void save_checkpoint(const std::string& path, const Restormer& net, AdamW& opt, const Tensor& ema, int64_t step,
                     const TrainOptions& o, double elapsed) {
    auto tensors = net.params().named_tensors();
    tensors.emplace_back("optim.m", opt.m());
    tensors.emplace_back("optim.v", opt.v());
    if (ema.defined()) tensors.emplace_back("optim.ema", ema);
    save_safetensors(path, tensors,
                     {{"config", json::dump(net.config().to_json())},
                      {"step", std::to_string(step)},
                      {"optimizer_steps", std::to_string(opt.steps())},
                      {"elapsed_s", str(elapsed)},  // training time over all sessions of the run
                      {"training", json::dump(options_json(o))},
                      {"precision", precision_name(precision())},
                      {"format", "amsnet-checkpoint-v1"}});
}

// The learning rate of step `step` (0-based): a function of the step alone, so resuming is exact.
double lr_at(const TrainOptions& o, int64_t step) {
    if (o.lr_schedule != "cosine") return o.lr;
    return o.lr * 0.5 * (1 + std::cos(M_PI * (double)std::min(step, o.steps) / (double)o.steps));
}

// ema <- d * ema + (1 - d) * w, with d = min(decay, (1 + step) / (10 + step)): a function of the
// step alone (exact resume), and early steps, far from the final weights, are forgotten quickly.
void update_average(Tensor& ema, const Tensor& w, double decay, int64_t step) {
    autograd::NoGradGuard ng;
    const double d = std::min(decay, (1.0 + (double)step) / (10.0 + (double)step));
    ema.copy_(ops::add(ops::scale(ema, d), ops::scale(w, 1 - d)));
}

// Runs f with the network's weights replaced by the average (when there is one), then puts them back.
template <class F>
void with_average(Restormer& net, const Tensor& ema, F&& f) {
    if (!ema.defined()) return f();
    Tensor raw = net.params().flat_values().clone();
    net.params().flat_values().copy_(ema);
    try {
        f();
    } catch (...) {
        net.params().flat_values().copy_(raw);
        throw;
    }
    net.params().flat_values().copy_(raw);
}

// The metadata entries of a chroma calibration (train/chroma.h) of `net` under the stored inference
// scheme, seed 0 (as denoise), on the training images.
// Ctrl-C or SIGTERM (train()'s handler installed) stops it with an error after the crop in progress.
std::map<std::string, std::string> calibrate(const Restormer& net, const ImageDataset& data, const TrainOptions& o,
                                             double lambda) {
    autograd::NoGradGuard ng;
    auto restore = [&](const Tensor& noisy) {
        return amsnet_restore_passes(net, noisy.to(o.device), o.val_pd, o.val_branches, o.val_passes, 0);
    };
    auto progress = [&](int done, int total) {
        AMS_CHECK(!g_interrupted, "interrupted during the chroma calibration");
        if (!o.quiet && isatty(2)) std::fprintf(stderr, "\r  calibrating the chroma smoothing: crop %d/%d   ", done, total);
    };
    ChromaCalibration c = calibrate_chroma(data.files(), restore, lambda, o.chroma_weight, 32, 128, progress);
    json::Value rec = json::Value::object(), grid = json::Value::array(), obj = json::Value::array();
    for (size_t i = 0; i < c.sigmas.size(); ++i) {
        grid.push_back(c.sigmas[i]);
        obj.push_back(c.objective[i]);
    }
    rec["chroma_weight"] = o.chroma_weight;
    rec["lambda"] = lambda;
    rec["pd"] = o.val_pd;  // the scheme the crops were restored with (the one stored with the model)
    rec["branches"] = o.val_branches;
    rec["passes"] = o.val_passes;
    rec["crops"] = c.crops;
    rec["crop"] = c.crop;
    rec["sigmas"] = grid;
    rec["objective"] = obj;
    rec["sigma"] = c.sigma;
    if (!o.quiet)
        std::fprintf(stderr, "\r  chroma smoothing calibrated on %d crops (at most %dpx square): sigma %g%s (objective %.6f; %.6f without)\n",
                     c.crops, c.crop, c.sigma, c.sigma == c.sigmas.back() ? ", the largest tried" : "",
                     *std::min_element(c.objective.begin(), c.objective.end()), c.objective[0]);
    return {{"inference_chroma_sigma", str(c.sigma)}, {"chroma_calibration", json::dump(rec)}};
}

// --calibrate-only: the lambda the weights were fine-tuned with (their training record), unless given.
double calibration_lambda(const TrainOptions& o, const std::map<std::string, std::string>& meta) {
    if (o.lambda_given) return o.lambda;
    auto it = meta.find("training");
    if (it != meta.end()) {
        json::Value t = json::parse(it->second, o.init_weights + " (training metadata)");
        const json::Value* l = t.find("lambda");
        if (l) {
            AMS_CHECK(l->is_number() && l->as_number() >= 0, "--calibrate-only: '", o.init_weights,
                      "' records a fine-tuning lambda that is not a number >= 0; give --lambda");
            return l->as_number();
        }
    }
    AMS_FAIL("--calibrate-only: '", o.init_weights, "' records no fine-tuning lambda; give --lambda");
}

// The options that make a run what it is, as options_json records them, and their flags. The
// inference scheme's entries are newer than the others: a record without them is not checked.
struct RunOption {
    const char* key;
    const char* option;
    bool newer;
};
constexpr RunOption kRunOptions[] = {
    {"mode", "", false}, {"include", "--include", false}, {"preset", "--preset/--config", false},
    {"batch", "--batch", false}, {"crop", "--crop", false}, {"pd", "--pd", false}, {"mask_p", "--mask-p", false},
    {"lr", "--lr", false}, {"lr_schedule", "--lr-schedule", false}, {"ema", "--ema", false}, {"seed", "--seed", false},
    {"lambda", "--lambda", false}, {"branches", "--branches", false}, {"passes", "--passes", false},
    {"infer_pd", "--infer-pd", true},
    {"infer_branches", "--infer-branches", true}, {"infer_passes", "--infer-passes", true}};

// A resumed run is the run it was: an entry of kRunOptions that differs from the checkpoint's
// record is an error naming its option (amsnet train/finetune take the record's values for the
// options not given on the command line). --steps may change (and with it a cosine schedule's
// length), and --chroma-weight (the calibration at the end: a finished run resumed with it only
// calibrates); other --data is allowed, with a warning (a moved folder; the batches then differ).
// Paths are compared as the files they name, from this folder.
void check_same_run(const TrainOptions& o, const SafetensorsFile& ckpt, const std::string& ckpt_path) {
    auto it = ckpt.metadata.find("training");
    if (it == ckpt.metadata.end()) return;
    const json::Value was = json::parse(it->second, ckpt_path + " (training metadata)"), now = options_json(o);
    for (const RunOption& r : kRunOptions) {
        const json::Value *a = was.find(r.key), *b = now.find(r.key);
        if (r.newer && !a) continue;
        // The model comes from the checkpoint: a preset is only compared where both name one (a run
        // from --weights recorded a preset before it recorded init_weights; a --config path may be
        // spelled from another folder).
        if (std::string(r.key) == "preset" &&
            (was.find("init_weights") || now.find("init_weights") ||
             (a && b && a->is_string() && b->is_string() && a->as_string().rfind("config:", 0) == 0 &&
              b->as_string().rfind("config:", 0) == 0)))
            continue;
        const std::string sa = a ? json::dump(*a) : "none", sb = b ? json::dump(*b) : "none";
        if (sa == sb) continue;
        if (std::string(r.key) == "mode")
            AMS_FAIL("--resume: the run in '", o.out, "' was made by amsnet ", a ? a->as_string() : "train",
                     "; resume it with that command");
        AMS_FAIL("--resume: the run in '", o.out, "' was started with ", r.option, " ", sa,
                 ", not ", sb, ": a resumed run continues as it started (leave the option out, or start another --out)");
    }
    std::vector<std::string> before, after;
    std::error_code ec;
    if (const json::Value* d = was.find("data"); d && d->is_array())
        for (const json::Value& x : d->as_array())
            if (x.is_string()) before.push_back(fs::weakly_canonical(x.as_string(), ec).string());
    for (const std::string& x : o.data)  // as recorded: a name that is not UTF-8 has U+FFFD there
        after.push_back(json::parse(json::dump(json::Value(fs::weakly_canonical(x, ec).string()))).as_string());
    if (!o.quiet && before != after)
        std::fprintf(stderr, "--resume: training on other --data than the run started with: its batches differ from "
                             "an uninterrupted run's\n");
}

// The run folder, made only when the run is about to write into it: a run that cannot start
// (bad data, damaged weights, a step that does not fit) leaves no empty folder behind.
void make_out_folder(const std::string& out) {
    std::error_code made, ec;
    fs::create_directories(out, made);  // its error is the cause (is_directory's would be "not found")
    AMS_CHECK(fs::is_directory(out, ec), "--out: cannot create folder '", out, "': ", (made ? made : ec).message());
}

// A run folder's files: a new run (not --resume) refuses a folder that holds them rather than
// replace a run that may have taken days.
void check_fresh_out(const TrainOptions& o) {
    std::error_code ec;
    // (A log.csv alone is a run that failed before its first save: starting again is right.)
    for (const char* name : {"checkpoint.safetensors", "model.safetensors"}) {
        if (o.calibrate_only && std::string(name) != "model.safetensors") continue;  // all it writes
        const fs::path f = fs::path(o.out) / name;
        AMS_CHECK(!fs::exists(f, ec), "--out: '", o.out, "' already holds a run (", f.filename().string(), "); ",
                  o.calibrate_only ? "" : "add --resume to continue it, or ", "give another folder (or delete it first)");
    }
}

}  // namespace

int training_interrupted() { return g_interrupted; }

int64_t train(const TrainOptions& o) {
    const char* who = o.finetune ? "amsnet finetune" : "amsnet train";  // the prefix of its notes, as of its errors
    AMS_CHECK(o.calibrate_only || o.steps > 0 || o.max_minutes > 0, "give --steps or --max-minutes (or both)");
    AMS_CHECK(!o.calibrate_only || (o.chroma_weight > 0 && !o.init_weights.empty() && !o.resume),
              "--calibrate-only needs --weights and --chroma-weight > 0, and no --resume");
    AMS_CHECK(o.batch >= 1, "--batch must be at least 1");
    AMS_CHECK(o.lr_schedule != "cosine" || o.steps > 0, "--lr-schedule cosine needs --steps (the length of the decay)",
              o.resume ? "; the run was started with it" : "");
    AMS_CHECK(o.ema >= 0 && o.ema < 1, "--ema must be in [0, 1), got ", o.ema);
    AMS_CHECK(o.calibrate_only || o.crop % (8 * o.pd) == 0, "--crop ", o.crop, " must be a multiple of 8 * --pd = ", 8 * o.pd,
              " (PD sub-images must be multiples of 8)");
    std::error_code ec;
    AMS_CHECK(!fs::exists(o.out, ec) || fs::is_directory(o.out, ec), "--out: '", o.out, "' is a file, not a folder");
    if (!o.resume) check_fresh_out(o);
    const std::string ckpt_path = (fs::path(o.out) / "checkpoint.safetensors").string();
    const std::string model_path = (fs::path(o.out) / "model.safetensors").string();
    const std::string log_path = (fs::path(o.out) / "log.csv").string();
    AMS_CHECK(!o.resume || fs::exists(ckpt_path, ec), "--resume: no checkpoint at '", ckpt_path, "'");

    // (--calibrate-only takes no training crops: its images need only be calibration-sized.)
    ImageDataset data(o.data, o.include, o.calibrate_only ? 8 : o.crop, (size_t)o.image_cache);
    Validation val = load_validation(o);
    DenoiseOptions val_scheme;  // its tile is chosen with the step's memory (validation_tile)
    val_scheme.tile = 0;
    val_scheme.pd = o.val_pd;
    val_scheme.branches = o.val_branches;
    val_scheme.verbose = false;

    // Model and optimizer: fresh, from --weights, or resumed from the checkpoint.
    std::unique_ptr<Restormer> net;
    int64_t step = 0;
    SafetensorsFile ckpt;
    if (o.resume) {
        ckpt = load_safetensors(ckpt_path);
        check_same_run(o, ckpt, ckpt_path);
        RestormerConfig cfg = RestormerConfig::from_json(json::parse(ckpt.metadata.at("config")), ckpt_path);
        net = std::make_unique<Restormer>(cfg, o.device);
        net->params().load(checkpoint_weights(ckpt), ckpt_path);
        step = std::stoll(ckpt.metadata.at("step"));
        // The math the run started with (checkpoints before this entry: fp32 or the environment's).
        if (ckpt.metadata.count("precision")) {
            const Precision was = parse_precision(ckpt.metadata.at("precision"), ckpt_path + ": precision");
            if (!o.precision_given && was != precision()) {
                set_precision(was);
                if (!o.quiet)
                    std::fprintf(stderr, "--resume: continuing with the checkpoint's precision %s\n", precision_name(was));
            } else if (was != precision() && !o.quiet) {
                std::fprintf(stderr, "--resume: the checkpoint was trained with precision %s, continuing with %s "
                                     "(--precision): not the same run as without the interruption\n",
                             precision_name(was), precision_name(precision()));
            }
        }
    } else if (!o.init_weights.empty()) {
        ModelFile m = load_model(o.init_weights, o.device);
        net = std::move(m.net);
        if (o.calibrate_only) {  // the weights and their record, with the scheme calibrated for
            std::map<std::string, std::string> meta = m.metadata;
            meta["inference_pd"] = std::to_string(o.val_pd);
            meta["inference_branches"] = std::to_string(o.val_branches);
            meta["inference_passes"] = std::to_string(o.val_passes);
            for (auto& [k, v] : calibrate(*net, data, o, calibration_lambda(o, meta))) meta[k] = v;
            make_out_folder(o.out);
            save_model(model_path, *net, meta);
            if (!o.quiet) std::fprintf(stderr, "wrote %s\n", model_path.c_str());
            return 0;
        }
    } else {
        net = std::make_unique<Restormer>(o.model, o.device);
        net->init(o.seed);
    }
    AdamW adam(net->params(), AdamWConfig{o.lr, 0.9, 0.999, 1e-8, o.weight_decay});
    if (o.resume) {
        adam.m().copy_(ckpt.get("optim.m"));
        adam.v().copy_(ckpt.get("optim.v"));
        adam.set_steps(std::stoll(ckpt.metadata.at("optimizer_steps")));
    }
    Tensor ema;  // the weights' moving average (--ema)
    if (o.ema > 0) {
        if (o.resume) {
            AMS_CHECK(ckpt.has("optim.ema"), "--resume --ema: the checkpoint '", ckpt_path,
                      "' was written without --ema");
            ema = ckpt.get("optim.ema").to(o.device);
        } else {
            ema = net->params().flat_values().clone();
        }
    }
    if (o.steps > 0 && step >= o.steps) {
        std::fprintf(stderr, "%s: checkpoint is already at step %lld of %lld%s\n", who, (long long)step, (long long)o.steps,
                     o.chroma_weight > 0 ? "; calibrating the chroma smoothing" : "");
        if (o.chroma_weight <= 0) return step;  // else: no step runs, the end of the run calibrates
    }

    // The step's loss (batch on the device, the step's number for its masks).
    auto loss_of = [&](const Tensor& batch, int64_t s) {
        return o.finetune ? amsnet_finetune_loss(*net, batch, o.pd, o.branches, o.lambda, o.seed, (uint32_t)s, o.passes)
                          : amsnet_train_loss(*net, batch, o.pd, o.seed, (uint32_t)s, o.mask_p);
    };
    if (!(o.steps > 0 && step >= o.steps)) {  // a step will run: will it fit? (train/step_memory.h)
        // The image cache lives in host memory: on the CPU, what it may still take is kept free.
        const StepMemoryRoom room =
            StepMemoryRoom::on(o.device, o.max_memory, o.device == Device::CPU ? (double)data.cache_room() : 0);
        const StepMemoryChoice m = fit_step_memory(*net, o.recompute, o.batch, o.crop, room,
                                                   [&](const Tensor& images) { return loss_of(images, step); });
        if (!m.note.empty() && !o.quiet) std::fprintf(stderr, "%s: %s\n", who, m.note.c_str());
        if (o.val_every > 0 && !val.noisy.empty()) {
            // A tenth of the room left to cuDNN's workspaces, as denoise does.
            val_scheme.tile = validation_tile(*net, val, val_scheme, 0.9 * room.room());
            if (val_scheme.tile > 0 && !o.quiet)
                std::fprintf(stderr, "%s: validation in tiles of %lld px: an image does not fit in the memory a "
                                     "step may use (%s)\n", who, (long long)val_scheme.tile, room.describe().c_str());
        }
    }

    make_out_folder(o.out);
    errno = 0;
    std::ofstream log(log_path, o.resume ? std::ios::app : std::ios::trunc);
    AMS_CHECK(log, "--out: cannot write '", log_path, "': ", errno ? std::strerror(errno) : "unknown error");
    if (!o.resume) log << "step,loss,lr,images_per_s,val_psnr,val_ssim,elapsed_s\n";
    if (!o.quiet)
        std::fprintf(stderr, "amsnet %s: %s, %lld parameters, %zu images, batch %d, crop %d, pd %d, lr %g, on %s%s\n",
                 o.finetune ? "finetune" : "train", net->config().summary().c_str(), (long long)net->params().total(),
                 data.size(), o.batch, o.crop, o.pd, o.lr, device_name(o.device),
                 o.resume ? str(", resuming at step ", step).c_str() : "");

    StopSignals stop_signals;
    Prefetcher prefetch(data, o.batch, o.seed);
    Stopwatch clock;  // this session; --max-minutes counts it alone
    // Earlier sessions of a resumed run: log.csv and the progress line count the run's whole time.
    double before = 0;
    if (o.resume && ckpt.metadata.count("elapsed_s")) before = std::atof(ckpt.metadata.at("elapsed_s").c_str());
    double interval_loss = 0, last_log_time = 0, last_waited = 0;
    int64_t interval_steps = 0, start_step = step;
    double last_loss = 0;
    // A resumed run that takes no step (a finished one, calibrating) keeps its model's last loss.
    std::string resumed_loss;
    if (o.resume && fs::exists(model_path)) {
        auto meta = load_safetensors(model_path, false).metadata;
        if (meta.count("final_loss")) resumed_loss = meta.at("final_loss");
    }
    std::map<std::string, std::string> chroma;  // the calibration's entries, once made
    auto save_model_file = [&](int64_t s) {
        with_average(*net, ema, [&] {  // the model file holds the average, the checkpoint the raw weights
            std::map<std::string, std::string> meta = {
                {"training", json::dump(options_json(o))}, {"step", std::to_string(s)},
                {"final_loss", s > start_step || resumed_loss.empty() ? str(last_loss) : resumed_loss},
                {"inference_pd", std::to_string(o.val_pd)},
                {"inference_branches", std::to_string(o.val_branches)},
                {"inference_passes", std::to_string(o.val_passes)},
                {"training_recompute", net->recompute() ? "on" : "off"},  // what the steps used
                {"training_precision", precision_name(precision())}};
            meta.insert(chroma.begin(), chroma.end());
            save_model(model_path, *net, meta);
        });
    };
    auto save_all = [&](int64_t s) {
        save_checkpoint(ckpt_path, *net, adam, ema, s, o, before + clock.seconds());
        save_model_file(s);
    };
    try {
        while (true) {
            if (o.steps > 0 && step >= o.steps) break;
            if (o.max_minutes > 0 && clock.seconds() >= o.max_minutes * 60) break;
            if (g_interrupted) break;
            Tensor batch = prefetch.get((uint64_t)step).to(o.device);
            net->params().zero_grad();
            Tensor loss = loss_of(batch, step);
            loss.backward();
            adam.config().lr = lr_at(o, step);
            adam.step();
            if (ema.defined()) update_average(ema, net->params().flat_values(), o.ema, step);
            ++step;
            ++interval_steps;
            const bool log_now = step % o.log_every == 0 || (o.steps > 0 && step == o.steps);
            if (o.device == Device::CPU || log_now) {  // on the GPU only read the loss when printing
                last_loss = loss.item();
                AMS_CHECK(std::isfinite(last_loss), "training diverged: loss is ", last_loss, " at step ", step);
                interval_loss += last_loss;
            }
            const bool val_now = o.val_every > 0 && !val.noisy.empty() && step % o.val_every == 0;
            if (log_now || val_now) {
                double now = clock.seconds();
                double ips = interval_steps * o.batch / std::max(1e-9, now - last_log_time);
                double mean_loss = o.device == Device::CPU ? interval_loss / interval_steps : last_loss;
                std::string val_psnr, val_ssim;
                if (val_now) {
                    ImageScore s;
                    with_average(*net, ema, [&] { s = validate(*net, val, val_scheme); });
                    val_psnr = str(s.psnr);
                    val_ssim = str(s.ssim);
                }
                double per_step = now / (double)(step - start_step);
                double left = o.steps > 0 ? per_step * (double)(o.steps - step) : INFINITY;
                if (o.max_minutes > 0) left = std::min(left, o.max_minutes * 60 - now);
                // A run that waits for its images (decoding more than the cache holds) says so.
                const double data_wait = (prefetch.waited() - last_waited) / std::max(1e-9, now - last_log_time);
                last_waited = prefetch.waited();
                if (!o.quiet)
                    std::fprintf(stderr, "step %lld%s loss %.5f lr %.1e %.2f img/s elapsed %s left %s%s%s\n",
                             (long long)step, o.steps > 0 ? str("/", o.steps).c_str() : "", mean_loss, adam.config().lr, ips,
                             format_duration(before + now).c_str(), format_duration(std::max(0.0, left)).c_str(),
                             val_now ? str(" val PSNR ", val_psnr, " dB SSIM ", val_ssim).c_str() : "",
                             data_wait >= 0.1 ? str(" (waiting for images ", std::lround(100 * data_wait),
                                                    "% of the time; see --image-cache)").c_str() : "");
                log << step << ',' << mean_loss << ',' << adam.config().lr << ',' << ips << ',' << val_psnr << ',' << val_ssim << ','
                    << before + now << '\n';
                log.flush();
                interval_loss = 0;
                interval_steps = 0;
                last_log_time = now;
            }
            if (o.save_every > 0 && step % o.save_every == 0) save_all(step);
        }
    } catch (...) {
        // Keep what was learned: the last completed step is consistent (the failure hit a new step).
        // A failed forward leaves its nodes and saved tensors on the tape: free them first, so that
        // saving has the memory back (an out-of-memory failure, e.g. under --max-memory).
        autograd::clear_tape();
        // Not weights that went NaN (a diverged step updates them before its loss is read): the
        // last checkpoint saved stays the run's.
        bool saved = false;
        try {
            if (step > start_step && first_nonfinite(net->params().flat_values()) < 0) {
                save_all(step);
                saved = true;
            }
        } catch (...) {
        }
        if (!o.quiet && saved)
            std::fprintf(stderr, "%s: the run is saved at step %lld; --resume continues it\n", who, (long long)step);
        throw;
    }
    save_all(step);
    // Calibrate a run that reached its end (steps or time; a run stopped by Ctrl-C calibrates when
    // resumed), after saving it: Ctrl-C or a failure here keeps the model, uncalibrated.
    if (o.chroma_weight > 0 && !g_interrupted) {
        try {
            with_average(*net, ema, [&] { chroma = calibrate(*net, data, o, o.lambda); });
        } catch (...) {
            std::fprintf(stderr, "\nthe model at step %lld is saved without a chroma calibration (--resume with "
                         "the same --out, or finetune --calibrate-only, adds it)\n", (long long)step);
            if (!g_interrupted) throw;
            return step;  // stopped by a signal, and saved: the exit status says which signal
        }
        save_model_file(step);  // the checkpoint saved above is unchanged by the calibration
    }
    if (!o.quiet)
        std::fprintf(stderr, "%s at step %lld after %s%s: wrote %s and %s\n", g_interrupted ? "interrupted" : "done",
                 (long long)step, format_duration(clock.seconds()).c_str(),
                 before > 0 ? str(" (", format_duration(before + clock.seconds()), " in all)").c_str() : "",
                 model_path.c_str(), ckpt_path.c_str());
    return step;
}

}  // namespace ams
