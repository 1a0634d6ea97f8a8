// amsnet eval: PSNR / SSIM (SPEC "Metrics") of predictions against clean references, or denoise
// noisy images with a model and score them in one go.
#include <climits>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <vector>

#include "engine/device.h"
#include "engine/image_io.h"
#include "engine/json.h"
#include "engine/precision.h"
#include "models/model_file.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/common.h"
#include "tools/denoise_options.h"
#include "train/gaussian.h"
#include "train/metrics.h"

namespace ams::cli {

namespace {

// The part of each path that tells the images of a list apart: the path without its extension,
// without the --match text and without what all paths share at their start and end (the folder,
// NOISY_ / GT_, _real / _mean), never cutting a number in two.
std::vector<std::string> distinguishing_names(const std::vector<std::string>& paths, const std::string& match) {
    namespace fs = std::filesystem;
    std::vector<std::string> names;
    for (const std::string& p : paths) {
        std::string stem = fs::path(p).stem().string();
        if (const size_t at = match.empty() ? std::string::npos : stem.find(match); at != std::string::npos)
            stem.erase(at, match.size());
        names.push_back((fs::path(p).parent_path() / stem).string());
    }
    if (names.size() < 2) return std::vector<std::string>(names.size());
    const std::string& a = names[0];
    size_t pre = a.size(), suf = a.size();
    for (const std::string& n : names) {
        size_t k = 0;
        while (k < pre && k < n.size() && n[k] == a[k]) ++k;
        pre = k;
        k = 0;
        while (k < suf && k < n.size() && n[n.size() - 1 - k] == a[a.size() - 1 - k]) ++k;
        suf = k;
    }
    auto digit = [](char c) { return c >= '0' && c <= '9'; };
    while (pre > 0 && digit(a[pre - 1])) --pre;            // img1|2, img1|3: keep the 12 and 13 whole
    while (suf > 0 && digit(a[a.size() - suf])) --suf;
    for (std::string& n : names) n = n.substr(std::min(pre, n.size()), n.size() - std::min(n.size(), pre + suf));
    return names;
}

// The numbers in a name, as values (img_1 and img_001 name the same image).
std::vector<std::string> numbers_in(const std::string& s) {
    std::vector<std::string> out;
    for (size_t i = 0; i < s.size();) {
        if (s[i] < '0' || s[i] > '9') {
            ++i;
            continue;
        }
        size_t j = i;
        while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
        size_t k = i;
        while (k + 1 < j && s[k] == '0') ++k;
        out.push_back(s.substr(k, j - k));
        i = j;
    }
    return out;
}

// Whether a prediction and a reference paired by sorted order look like the same picture: their
// distinguishing parts hold the same numbers (0001_NOISY_SRGB_010 and 0001_GT_SRGB_010 do), or,
// without numbers, are the same text.
bool names_correspond(const std::string& a, const std::string& b) {
    const std::vector<std::string> na = numbers_in(a), nb = numbers_in(b);
    return na == nb && (!na.empty() || a == b);
}

}  // namespace

int cmd_eval(int argc, char** argv) {
    Args a("eval", "--pred P --clean C [--json] | --weights W --noisy N --clean C [denoise options]",
           "Scores images against clean references: PSNR over all RGB values and SSIM (11x11 Gaussian,\n"
           "per channel, valid region) after rounding to 8 bits, per image and averaged. Files or folders\n"
           "(paired by sorted order; the counts must match). With --weights, the noisy images are denoised\n"
           "first (same options as amsnet denoise) and the noisy input is scored too; --gaussian SIGMA\n"
           "scores a Gaussian-blur baseline the same way.");
    a.option("pred", "P", "denoised image or folder");
    a.option("clean", "C", "clean reference image or folder");
    a.option("weights", "W", "denoise --noisy with this model instead of reading --pred");
    a.option("gaussian", "SIGMA", "baseline: denoise --noisy by a Gaussian blur of this sigma instead of a model");
    a.option("noisy", "N", "noisy image or folder (with --weights)");
    a.option("match-pred", "TEXT", "in folders, use only --pred/--noisy files whose name contains TEXT (e.g. _real)");
    a.option("match-clean", "TEXT", "in folders, use only --clean files whose name contains TEXT (e.g. _mean)");
    a.option("max-images", "N", "score only the first N pairs (0 = all)", "0");
    a.option("device", "D", "auto, cpu or cuda (with --weights)", "auto");
    add_precision_option(a);
    a.flag("json", "print {\"images\": [...], \"mean_psnr\": x, \"mean_ssim\": y} on stdout");
    add_denoise_options(a);
    if (!a.parse(argc, argv, 2)) return 0;

    const bool with_model = a.given("weights") || a.given("gaussian");
    AMS_CHECK(!(a.given("weights") && a.given("gaussian")), "give --weights or --gaussian, not both");
    AMS_CHECK(!(with_model && a.given("pred")), "--pred scores results you already have; --",
              a.given("weights") ? "weights" : "gaussian", " denoises --noisy first: give one of them");
    AMS_CHECK(with_model || a.given("pred"), "give --pred (results to score), or --weights or --gaussian with --noisy");
    AMS_CHECK(with_model || !a.given("noisy"), "--noisy is denoised with --weights or --gaussian; --pred scores "
              "results you already have: give one of them");
    if (!a.given("weights")) {  // a denoising option would change nothing: say so rather than ignore it
        std::vector<const char*> denoising(std::begin(kDenoiseOptions), std::end(kDenoiseOptions));
        denoising.push_back("device");
        for (const char* o : denoising)
            AMS_CHECK(!a.given(o), "--", o, " applies to denoising with --weights", a.given("gaussian") ? "" : " --noisy",
                      "; it does nothing with --", a.given("gaussian") ? "gaussian" : "pred");
    }
    if (a.given("weights")) read_denoise_options(a, {});  // the options' values checked before any work
    std::vector<std::string> clean = list_images(a.require("clean"), a.get("match-clean"));
    std::vector<std::string> pred = list_images(with_model ? a.require("noisy") : a.require("pred"), a.get("match-pred"));
    AMS_CHECK(pred.size() == clean.size(), "--", with_model ? "noisy" : "pred", " has ", pred.size(),
              " images but --clean has ", clean.size());
    size_t n = pred.size();
    if (long long mx = a.integer("max-images", 0, LLONG_MAX); mx > 0) n = std::min<size_t>(n, (size_t)mx);
    AMS_CHECK(n > 0, "no images to score");
    {  // paired by sorted order: a missing file shifts every later pair, which names then show
        const std::vector<std::string> kp = distinguishing_names(pred, a.get("match-pred")),
                                       kc = distinguishing_names(clean, a.get("match-clean"));
        size_t odd = 0, first = 0;
        for (size_t i = n; i-- > 0;)
            if (!names_correspond(kp[i], kc[i])) ++odd, first = i;
        if (odd > 0)
            std::fprintf(stderr, "amsnet eval: warning: %zu of %zu pairs have names that do not correspond (paired "
                         "by sorted order; is a file missing?), first '%s' with '%s'\n", odd, n, pred[first].c_str(),
                         clean[first].c_str());
    }

    ModelFile model;
    DenoiseOptions opts;
    Device dev = Device::CPU;
    const double sigma = a.given("gaussian") ? a.number("gaussian", 1e-3, 100) : 0;
    if (with_model && sigma == 0) {
        dev = parse_device(a.get("device"));
        apply_precision(a, dev);
    } else if (a.given("precision")) {
        parse_precision(a.get("precision"), "--precision");  // checked; no product is computed
    }
    if (sigma > 0) {
        std::fprintf(stderr, "amsnet eval: Gaussian blur baseline, sigma %g\n", sigma);
    } else if (with_model) {
        model = load_model(a.get("weights"), dev);
        opts = read_denoise_options(a, model.metadata);
        apply_memory_limit(opts.max_memory, dev);
        std::fprintf(stderr, "amsnet eval: %s on %s, %s\n", model.config.summary().c_str(), device_name(dev),
                     opts.summary().c_str());
    }
    json::Value images = json::Value::array();
    double sum_psnr = 0, sum_ssim = 0, sum_in_psnr = 0, sum_in_ssim = 0;
    const bool js = a.on("json");
    for (size_t i = 0; i < n; ++i) try {
        Tensor ref = load_image(clean[i]);
        Tensor img = load_image(pred[i]);
        AMS_CHECK(img.shape() == ref.shape(), "'", pred[i], "' is ", img.dim(3), "x", img.dim(2), " but '", clean[i],
                  "' is ", ref.dim(3), "x", ref.dim(2));
        json::Value rec = json::Value::object();
        rec[with_model ? "noisy" : "pred"] = pred[i];
        rec["clean"] = clean[i];
        if (with_model) {
            ImageScore in = score_images(img, ref);
            rec["noisy_psnr"] = in.psnr;
            rec["noisy_ssim"] = in.ssim;
            sum_in_psnr += in.psnr;
            sum_in_ssim += in.ssim;
            img = sigma > 0 ? gaussian_blur(img, sigma) : denoise_image(*model.net, img.to(dev), opts);
        }
        ImageScore s = score_images(img, ref);
        rec["psnr"] = s.psnr;
        rec["ssim"] = s.ssim;
        sum_psnr += s.psnr;
        sum_ssim += s.ssim;
        images.push_back(rec);
        if (!js) {
            std::printf("%-60s PSNR %7.3f dB  SSIM %.4f", pred[i].c_str(), s.psnr, s.ssim);
            if (with_model) std::printf("   (noisy %7.3f dB / %.4f)", rec.at("noisy_psnr").as_number(), rec.at("noisy_ssim").as_number());
            std::printf("\n");
        } else {
            std::fprintf(stderr, "[%zu/%zu] %s PSNR %.3f dB SSIM %.4f\n", i + 1, n, pred[i].c_str(), s.psnr, s.ssim);
        }
    } catch (const Error& e) {  // which pair, when the message does not name it (a metric's)
        const std::string& m = e.message();
        if (m.find(pred[i]) != std::string::npos || m.find(clean[i]) != std::string::npos) throw;
        AMS_FAIL("'", pred[i], "' against '", clean[i], "': ", m);
    }
    if (js) {
        json::Value r = json::Value::object();
        r["images"] = images;
        r["mean_psnr"] = sum_psnr / n;
        r["mean_ssim"] = sum_ssim / n;
        if (with_model) {
            r["mean_noisy_psnr"] = sum_in_psnr / n;
            r["mean_noisy_ssim"] = sum_in_ssim / n;
        }
        std::printf("%s\n", json::dump(r, 2).c_str());
    } else {
        std::printf("mean over %zu images: PSNR %.3f dB  SSIM %.4f", n, sum_psnr / n, sum_ssim / n);
        if (with_model) std::printf("   (noisy %.3f dB / %.4f)", sum_in_psnr / n, sum_in_ssim / n);
        std::printf("\n");
    }
    return 0;
}

}  // namespace ams::cli
