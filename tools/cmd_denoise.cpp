// amsnet denoise: an image or a folder through the AMSNet k-branch scheme (optionally R^3), or the
// plain denoiser.
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>

#include "engine/device.h"
#include "engine/image_io.h"
#include "models/model_file.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/common.h"
#include "tools/denoise_options.h"

namespace fs = std::filesystem;

namespace ams::cli {

namespace {

struct Plan {
    std::vector<std::string> inputs, outputs;
};

// The images to denoise and where each result goes, checked before any work: an unwritable or
// clashing name must not cost a run, and no result may replace a photo.
Plan plan_outputs(const std::string& in, const std::string& out, bool folder, const std::string& match,
                  std::string format, int bits, bool format_given) {
    Plan p;
    std::error_code ec;
    if (!format.empty() && format[0] == '.') format.erase(0, 1);  // --format .npy as --format npy
    for (char c : format)
        AMS_CHECK(std::isalnum((unsigned char)c), "--format: '", format, "' is not a file extension (png, jpg, npy, ...)");
    if (folder) {
        AMS_CHECK(!fs::exists(out, ec) || is_directory(out), "--output: '", out, "' exists and is not a folder");
        AMS_CHECK(fs::exists(out, ec) || !is_image_path(out), "--output: '", out,
                  "' names an image file, but --input is a folder: give a folder for the results");
        // The results' folder must not be the photos' or inside it: a later run would take the
        // results for photos, and a result could land on a photo of the same name.
        const fs::path in_abs = fs::weakly_canonical(in, ec), out_abs = fs::weakly_canonical(out, ec);
        const fs::path out_rel = out_abs.lexically_relative(in_abs);
        AMS_CHECK(out_rel.empty() || *out_rel.begin() == "..", "--output: '", out, "' is ",
                  out_rel == "." ? "the input folder" : "inside the input folder",
                  "; give the results a folder outside '", in, "'");
        const fs::path in_rel = in_abs.lexically_relative(out_abs);
        AMS_CHECK(in_rel.empty() || *in_rel.begin() == "..", "--output: '", out, "' holds the input folder '", in,
                  "'; give the results a folder beside it, not around it");
        size_t linked = 0;
        for (const std::string& src : list_images(in, match)) {
            // A linked folder among the photos that leads into the results' folder: skipped.
            const fs::path r = fs::weakly_canonical(src, ec).lexically_relative(out_abs);
            if (!r.empty() && *r.begin() != "..") {
                ++linked;
                continue;
            }
            // Lexical, not fs::relative: that resolves symlinks, and a linked image would map
            // to a name outside --output.
            fs::path rel = fs::path(src).lexically_relative(in);
            AMS_CHECK(!rel.empty() && *rel.begin() != "..", "cannot place '", src, "' under --output");
            if (!format.empty()) rel.replace_extension("." + format);
            p.inputs.push_back(src);
            p.outputs.push_back((fs::path(out) / rel).string());
            // A link inside the results' folder must not lead a result into the photos' folder.
            const fs::path lands = fs::weakly_canonical(p.outputs.back(), ec).lexically_relative(in_abs);
            AMS_CHECK(lands.empty() || *lands.begin() == "..", "--output: the result for '", src, "' would be written to '",
                      p.outputs.back(), "', which a link leads into the input folder; remove the link or choose another --output");
        }
        if (linked > 0)
            std::fprintf(stderr, "note: %zu image%s under '%s' lead%s into the output folder through a link: skipped\n",
                         linked, linked > 1 ? "s" : "", in.c_str(), linked > 1 ? "" : "s");
    } else {
        AMS_CHECK(is_image_path(in), "--input: '", in, "' is not a PNG, JPEG, BMP or .npy image");
        AMS_CHECK(!is_directory(out), "--output: '", out, "' is a folder; give a file name (e.g. out.png)");
        fs::path parent = fs::path(out).parent_path();
        AMS_CHECK(parent.empty() || is_directory(parent.string()), "--output: folder '", parent.string(),
                  "' does not exist");
        p.inputs.push_back(in);
        p.outputs.push_back(out);
    }
    AMS_CHECK(!p.inputs.empty(), "--input: no PNG, JPEG, BMP or .npy images in '", in, "'",
              match.empty() ? "" : " whose name contains '" + match + "'");
    std::map<std::string, std::string> source_of;  // two inputs (a.png, a.jpg) must not share a result
    for (size_t i = 0; i < p.outputs.size(); ++i) {
        try {
            check_image_output(p.outputs[i], bits);
        } catch (const Error& e) {
            AMS_FAIL(format_given ? "--format: " : "--output: ", e.message());
        }
        auto [it, fresh] = source_of.emplace(p.outputs[i], p.inputs[i]);
        AMS_CHECK(fresh, "--output: '", it->second, "' and '", p.inputs[i], "' would both be written to '", p.outputs[i],
                  "' (use --match to pick one)");
        AMS_CHECK(!fs::exists(p.outputs[i], ec) || !fs::equivalent(p.outputs[i], p.inputs[i], ec), "--output: '",
                  p.outputs[i], "' is the input photo itself; the result would replace it (give another name)");
    }
    return p;
}

}  // namespace

int cmd_denoise(int argc, char** argv) {
    Args a("denoise", "--weights W --input FILE|DIR --output FILE|DIR [options]",
           "Denoises a photo (or every image in a folder, recursively; the output folder gets the same\n"
           "relative names). Any image size. Input: PNG (8 or 16-bit), JPEG, BMP, or .npy (a float array\n"
           "H x W or H x W x C on the [0, 1] scale, unclipped). Output format by extension: .png (16-bit\n"
           "when the input has more than 8 bits, else 8-bit; see --bits), .jpg, .bmp, or .npy (float32\n"
           "H x W x C, unclipped). Grey photos come out grey and an alpha channel is kept as it was (JPEG\n"
           "stores no alpha). A JPEG or PNG result keeps the input's Exif (camera, exposure, date, GPS,\n"
           "orientation: the pixels stay as stored, so viewers turn the result like the original), its\n"
           "ICC colour profile and its XMP (ratings, keywords).");
    a.option("weights", "W", "weights file (.safetensors) from amsnet train/finetune or convert_checkpoint.py");
    a.option("input", "PATH", "noisy image or folder of images");
    a.option("output", "PATH", "output image or folder");
    add_denoise_options(a);
    a.option("bits", "B", "bits per sample for PNG output: 8, 16, or auto (16 when the input has more than 8: a 16-bit PNG or .npy floats)", "auto");
    a.option("match", "TEXT", "for folder input: only files whose name contains TEXT");
    a.option("format", "EXT", "for folder output: write this extension (png, npy, ...) instead of the input's", "");
    a.flag("strip-metadata", "leave the input's Exif and XMP (camera, date, GPS, ratings, ...) out of the result; the colour profile is kept (it defines the colours)");
    a.option("device", "D", "auto, cpu or cuda", "auto");
    add_precision_option(a);
    if (!a.parse(argc, argv, 2)) return 0;
    const bool strip_metadata = a.on("strip-metadata");

    const std::string bits_arg = a.get("bits");
    AMS_CHECK(bits_arg == "auto" || bits_arg == "8" || bits_arg == "16", "--bits must be 8, 16 or auto, got '", bits_arg, "'");
    const bool auto_bits = bits_arg == "auto";
    const int bits = bits_arg == "16" ? 16 : 8;  // auto: checked as 8, chosen per image when written
    std::string in = a.require("input"), out = a.require("output"), weights = a.require("weights");
    Device dev = parse_device(a.get("device"));
    apply_precision(a, dev);

    read_denoise_options(a, {});  // every scheme option's value checked before any work
    std::error_code exists_ec;
    AMS_CHECK(fs::exists(in, exists_ec), "--input: '", in, "' does not exist");
    const bool folder = is_directory(in);
    AMS_CHECK(folder || !a.given("match"), "--match picks files in a folder; --input '", in, "' is a file");
    AMS_CHECK(folder || !a.given("format"), "--format names a folder's outputs; give --output a file name instead");
    const Plan plan = plan_outputs(in, out, folder, a.get("match"), a.get("format"), bits, a.given("format"));
    const std::vector<std::string>& inputs = plan.inputs;
    const std::vector<std::string>& outputs = plan.outputs;
    // Writable? Tried in the output folder, or the nearest folder that exists on its way (it is
    // created only once the model has loaded: a run that cannot start leaves nothing behind).
    fs::path where = folder ? fs::path(out) : fs::path(out).parent_path();
    std::error_code ec;
    while (!where.empty() && !fs::exists(where, ec)) where = where.parent_path();
    check_writable_folder(where.string());
    ModelFile m = load_model(weights, dev);
    if (folder) make_directory(out);
    DenoiseOptions o = read_denoise_options(a, m.metadata);
    apply_memory_limit(o.max_memory, dev);
    std::fprintf(stderr, "amsnet denoise: %s on %s, %s\n", m.config.summary().c_str(), device_name(dev),
                 o.summary().c_str());

    // On the GPU a pipeline: the next image decodes and the previous result is written (a
    // 12-megapixel PNG takes about 2 s to encode) while this one is denoised; at most one of each
    // in flight. On the CPU the same steps run in order: they would take the cores and memory the
    // denoising uses (measured: no faster, 20% more memory).
    // AMS_DENOISE_OVERLAP=1 overlaps on the CPU too (the tests run the GPU's path that way).
    const char* overlap = std::getenv("AMS_DENOISE_OVERLAP");
    const bool overlapped = dev != Device::CPU || (overlap && std::string(overlap) == "1");
    const auto when = overlapped ? std::launch::async : std::launch::deferred;
    struct Loaded {
        Tensor image;
        ImageExtras extras;  // a grey photo comes out grey, a transparent one keeps its alpha
    };
    auto load = [&](size_t i) {
        Loaded l;
        l.image = load_image(inputs[i], &l.extras);
        if (strip_metadata) l.extras.metadata = ImageMetadata{"", l.extras.metadata.icc, ""};
        return l;
    };
    // In a folder, an image that fails (unreadable, too small, out of memory, not writable) is
    // reported and the others go on; the run then fails, naming how many. A single image's error
    // is the run's, prefixed with its name where the message lacks it.
    std::mutex failed_mu;  // the writer reports its failures from its own thread
    std::vector<std::string> failed;
    auto fail = [&](size_t i, const std::string& message) {
        const std::string what = message.find(inputs[i]) == std::string::npos ? inputs[i] + ": " + message : message;
        if (!folder) throw Error(what);
        std::lock_guard<std::mutex> lock(failed_mu);
        std::fprintf(stderr, "[%zu/%zu] error: %s\n", i + 1, inputs.size(), what.c_str());
        failed.push_back(inputs[i]);
    };
    Stopwatch total;
    bool told_format = false;  // only the writer (one at a time) reads and sets it
    std::future<Loaded> next = std::async(when, load, 0);
    std::future<void> writing;
    try {
        for (size_t i = 0; i < inputs.size(); ++i) {
            Stopwatch sw;
            Loaded cur;
            try {
                cur = next.get();
            } catch (const Error& e) {
                if (i + 1 < inputs.size()) next = std::async(when, load, i + 1);
                fail(i, e.message());
                continue;
            }
            if (i + 1 < inputs.size()) next = std::async(when, load, i + 1);
            Tensor result;
            try {
                if (folder) make_directory(fs::path(outputs[i]).parent_path().string());
                Tensor noisy = cur.image.to(dev);
                DenoiseOptions oi = o;
                if (cur.extras.channels <= 2) oi.chroma_sigma = 0;  // a grey photo has no chroma to smooth
                // To the host here: the device is this thread's alone.
                result = restore_file_channels(denoise_image(*m.net, noisy, oi), cur.extras).to(Device::CPU);
            } catch (const Error& e) {
                fail(i, e.message());
                continue;
            }
            if (writing.valid()) writing.get();
            writing = std::async(when, [&, i, sw, result, cur_bits = cur.extras.bits, meta = std::move(cur.extras.metadata)] {
                const std::string ext = image_extension(outputs[i]);
                const int b = auto_bits && cur_bits > 8 && ext == ".png" ? 16 : bits;
                std::string lost;
                try {
                    lost = save_image(outputs[i], result, b, meta);
                } catch (const Error& e) {
                    fail(i, e.message());
                    return;
                }
                // What the format cannot hold at all is said once (a folder to .npy would say it for
                // every file); what one file's metadata exceeds, for each.
                const bool format_wide = !lost.empty() && !stores_metadata(ext);
                if (!lost.empty() && !(format_wide && told_format))
                    std::fprintf(stderr, "note: %s: not stored: %s\n", outputs[i].c_str(), lost.c_str());
                told_format = told_format || format_wide;
                std::fprintf(stderr, "[%zu/%zu] %s -> %s (%lldx%lld, %s)\n", i + 1, inputs.size(), inputs[i].c_str(),
                             outputs[i].c_str(), (long long)result.dim(3), (long long)result.dim(2),
                             format_duration(sw.seconds()).c_str());
            });
            if (when == std::launch::deferred) writing.get();  // written now, not after the next image
        }
        if (writing.valid()) writing.get();
    } catch (...) {
        // What was denoised is still written before the error is reported (its own write error,
        // if any, is the one reported).
        if (writing.valid()) writing.get();
        throw;
    }
    AMS_CHECK(failed.empty(), failed.size(), " of ", inputs.size(), " images failed (each is reported above; the first: '",
              failed.empty() ? "" : failed.front(), "'); the other results are written");
    if (inputs.size() > 1)
        std::fprintf(stderr, "denoised %zu images in %s\n", inputs.size(), format_duration(total.seconds()).c_str());
    return 0;
}

}  // namespace ams::cli
