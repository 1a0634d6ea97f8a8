// The training loop for AMSNet-B (masked L1 on PD sub-images) and AMSNet-P fine-tuning (full
// k-branch restoration, L1 + lambda * TV), with AdamW, checkpoints that resume exactly, a CSV log,
// periodic validation and a progress line.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/dtype.h"
#include "engine/safetensors.h"
#include "models/restormer.h"
#include "train/dataset.h"

namespace ams {

struct TrainOptions {
    std::vector<std::string> data;  // folders of noisy images
    std::string include;            // keep files whose name contains this
    double image_cache = (double)ImageDataset::kDefaultCacheBytes;  // decoded training images kept (bytes)
    std::string out;                // run folder
    RestormerConfig model;
    std::string preset;             // for the record
    int64_t steps = 0;              // total steps (0: until max_minutes)
    double max_minutes = 0;         // stop and save at this wall time (0: no limit)
    int batch = 4, crop = 160, pd = 5;
    double mask_p = 0.5;            // fraction of sub-image pixels hidden per step (SPEC: 0.5)
    double lr = 1e-4, weight_decay = 0;
    std::string lr_schedule = "constant";  // or "cosine": lr * (1 + cos(pi * step / steps)) / 2
    // Exponential moving average of the weights (0: off). model.safetensors then holds the average;
    // the decay of step s is min(ema, (1 + s) / (10 + s)), so short runs are not dominated by the start.
    double ema = 0;
    uint64_t seed = 42;
    int64_t save_every = 500, log_every = 10;
    std::string val_noisy, val_clean;
    int64_t val_every = 0;
    int val_max = 4;     // validation images scored
    int val_pd = 2, val_branches = 2;  // inference scheme of validation, stored as the model's default
    int val_passes = 1;                // stored as the model's default inference passes (validation: one)
    bool resume = false;
    // --precision was given: with --resume, the policy stays as set; otherwise the checkpoint's
    // policy (engine/precision.h) is taken back, so the run continues as it started.
    bool precision_given = false;
    // Fine-tuning (AMSNet-P)
    bool finetune = false;
    std::string init_weights;  // start from these weights (finetune, or train from a model)
    double lambda = 0.01;
    bool lambda_given = false;  // --calibrate-only otherwise takes the weights' fine-tuning lambda
    int branches = 2;
    int passes = 1;  // restorations averaged into I_DN (finetune)
    // Chroma smoothing (train/chroma.h): with a weight > 0, the run ends by calibrating its sigma on
    // the training images with the stored inference scheme and stores it with the model.
    double chroma_weight = 0;
    bool calibrate_only = false;  // no training: calibrate init_weights and write the model file
    Device device = Device::CPU;
    // Recompute cheap intermediates in backward instead of keeping them (Restormer::set_recompute):
    // -1 = auto (off, unless a step fits only with it: train/step_memory.h), 0 = off, 1 = on.
    int recompute = -1;
    // Memory a training step may use, in bytes (0: what the device has free); checked before the
    // first step (train/step_memory.h).
    double max_memory = 0;
    bool quiet = false;  // no progress lines on stderr (log.csv is still written)
};

// Runs training; returns the number of the last completed step. Writes, in opt.out:
// model.safetensors (weights, or their moving average with --ema, + configuration + training
// metadata), checkpoint.safetensors (weights, AdamW moments, average, step; resumable), log.csv.
// With calibrate_only, only model.safetensors: init_weights with their metadata and the chroma
// calibration.
// A new run (not resume) refuses an --out that holds a run's files; a resumed one refuses options
// that differ from its checkpoint's record (the batch, crop, learning rate, seed, ...).
int64_t train(const TrainOptions& opt);
// The signal (SIGINT for Ctrl-C, SIGTERM) that stopped the last train() after saving, else 0: the
// exit status is 128 + it, as if the signal had ended the process.
int training_interrupted();

// The network's weights in a checkpoint: every tensor but the optimizer's ("optim.*").
std::vector<std::pair<std::string, Tensor>> checkpoint_weights(const SafetensorsFile& ckpt);

// Presets: "restormer" (SPEC), "small" (useful CPU training in minutes), "tiny" (tests).
RestormerConfig preset_config(const std::string& name);

}  // namespace ams
