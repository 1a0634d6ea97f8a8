#include "engine/safetensors.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "engine/json.h"

namespace ams {

// Tensor bytes are copied as they are: the format is little-endian and so is every host we target.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the reference loader's limit

// Why a file cannot be read, for messages: distinguishes missing files from other failures.
std::string open_failure(const std::string& path) {
    const int err = errno;  // before the filesystem calls below can change it
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return "no such file";
    if (std::filesystem::is_directory(path, ec)) return "is a directory";
    return std::strerror(err);
}

DType parse_dtype(const std::string& s) {
    for (DType t : {DType::F32, DType::F64, DType::F16, DType::BF16})
        if (s == dtype_name(t)) return t;
    AMS_FAIL("unsupported dtype '", s, "' (supported: F32, F64, F16, BF16)");
}

// One header entry, checked against the size of the data section.
struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    uint64_t begin, end;
};

Entry parse_entry(const std::string& name, const json::Value& v, uint64_t data_bytes) {
    Entry e{name, parse_dtype(v.at("dtype").as_string()), {}, 0, 0};
    const size_t esize = dtype_size(e.dtype);
    // Byte count with overflow checks, over the non-zero dims too (so that Tensor::empty never sees
    // a shape whose element count overflows, even when another dim is 0).
    uint64_t bytes = esize, nonzero = 1;
    bool overflow = false, has_zero = false;
    for (const json::Value& d : v.at("shape").as_array()) {
        int64_t n = d.as_int();
        if (n < 0) AMS_FAIL("negative dimension ", n, " in shape");
        e.shape.push_back(n);
        has_zero |= n == 0;
        if (n) overflow |= __builtin_mul_overflow(nonzero, (uint64_t)n, &nonzero) ||
                           __builtin_mul_overflow(bytes, (uint64_t)n, &bytes);
    }
    if (overflow || nonzero > (uint64_t)INT64_MAX) AMS_FAIL("shape ", shape_str(e.shape), " is too large");
    if (has_zero) bytes = 0;
    const auto& off = v.at("data_offsets").as_array();
    if (off.size() != 2) AMS_FAIL("data_offsets must hold [begin, end], got ", off.size(), " values");
    int64_t b = off[0].as_int(), en = off[1].as_int();
    if (b < 0 || en < b || (uint64_t)en > data_bytes)
        AMS_FAIL("data_offsets [", b, ", ", en, "] lie outside the data section of ", data_bytes,
                 " bytes (truncated file?)");
    e.begin = (uint64_t)b;
    e.end = (uint64_t)en;
    if (bytes != e.end - e.begin)
        AMS_FAIL("data_offsets [", b, ", ", en, "] hold ", e.end - e.begin, " bytes but shape ",
                 shape_str(e.shape), " of ", dtype_name(e.dtype), " needs ", bytes);
    return e;
}

}  // namespace

bool SafetensorsFile::has(const std::string& name) const {
    for (const auto& [n, t] : tensors)
        if (n == name) return true;
    return false;
}

Tensor SafetensorsFile::get(const std::string& name) const {
    for (const auto& [n, t] : tensors)
        if (n == name) return t;
    AMS_FAIL(path, ": no tensor named '", name, "' (the file holds ", tensors.size(), " tensors)");
}

SafetensorsFile load_safetensors(const std::string& path, bool read_tensors) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) AMS_FAIL(path, ": cannot read safetensors file: is a directory");
    std::ifstream f(path, std::ios::binary);
    if (!f) AMS_FAIL(path, ": cannot read safetensors file: ", open_failure(path));
    f.seekg(0, std::ios::end);
    const uint64_t file_bytes = (uint64_t)f.tellg();
    f.seekg(0);
    if (file_bytes < 8)
        AMS_FAIL(path, ": not a safetensors file: ", file_bytes, " bytes is shorter than the 8-byte header length");

    uint64_t n = 0;
    f.read(reinterpret_cast<char*>(&n), 8);
    if (n > kMaxHeaderBytes)
        AMS_FAIL(path, ": safetensors header length ", n, " exceeds the 100 MB limit (corrupt file?)");
    if (n > file_bytes - 8)
        AMS_FAIL(path, ": safetensors header length ", n, " runs past the end of the ", file_bytes,
                 "-byte file (truncated?)");
    std::string text(n, '\0');
    f.read(text.data(), (std::streamsize)n);
    if (!f) AMS_FAIL(path, ": read error in the safetensors header");
    const uint64_t data_start = 8 + n, data_bytes = file_bytes - data_start;

    json::Value header = json::parse(text, path + " (safetensors header)");
    if (!header.is_object()) AMS_FAIL(path, ": safetensors header is a JSON ", header.type_name(), ", not an object");

    SafetensorsFile out;
    out.path = path;
    std::vector<Entry> entries;
    for (const auto& [name, v] : header.as_object()) {
        try {
            if (name == "__metadata__") {
                for (const auto& [k, s] : v.as_object()) out.metadata[k] = s.as_string();
            } else {
                entries.push_back(parse_entry(name, v, data_bytes));
            }
        } catch (const Error& e) {
            AMS_FAIL(path, ": safetensors entry '", name, "': ", e.what());
        }
    }

    // Two tensors sharing bytes means a corrupt header (the format never aliases).
    std::vector<const Entry*> by_offset;
    for (const Entry& e : entries)
        if (e.end > e.begin) by_offset.push_back(&e);
    std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
    for (size_t k = 1; k < by_offset.size(); ++k)
        if (by_offset[k]->begin < by_offset[k - 1]->end)
            AMS_FAIL(path, ": safetensors tensors '", by_offset[k - 1]->name, "' and '", by_offset[k]->name,
                     "' overlap in the data section");
    if (!read_tensors) return out;

    for (const Entry& e : entries) {
        Tensor t = Tensor::empty(e.shape, e.dtype, Device::CPU);
        if (e.end > e.begin) {
            f.seekg((std::streamoff)(data_start + e.begin));
            f.read(static_cast<char*>(t.raw_data()), (std::streamsize)(e.end - e.begin));
            if (!f) AMS_FAIL(path, ": read error in the data of tensor '", e.name, "'");
        }
        out.tensors.emplace_back(e.name, std::move(t));
    }
    return out;
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
    json::Value header = json::Value::object();
    if (!metadata.empty()) {
        json::Value& m = header["__metadata__"];
        m = json::Value::object();
        for (const auto& [k, v] : metadata) m[k] = v;
    }
    std::set<std::string> seen;
    std::vector<Tensor> host;  // keeps the CPU copies alive until written
    uint64_t offset = 0;
    for (const auto& [name, t] : tensors) {
        if (name.empty() || name == "__metadata__")
            AMS_FAIL(path, ": cannot save a tensor named '", name, "'");
        if (!seen.insert(name).second) AMS_FAIL(path, ": duplicate tensor name '", name, "'");
        if (!t.defined()) AMS_FAIL(path, ": tensor '", name, "' is undefined");
        Tensor c = t.to(Device::CPU).contiguous();
        json::Value e = json::Value::object();
        e["dtype"] = dtype_name(c.dtype());
        json::Value& shape = e["shape"];
        shape = json::Value::array();
        for (int64_t d : c.shape()) shape.push_back(d);
        json::Value& off = e["data_offsets"];
        off = json::Value::array();
        off.push_back(offset);
        off.push_back(offset + c.nbytes());
        offset += c.nbytes();
        header[name] = std::move(e);
        host.push_back(std::move(c));
    }
    std::string text = json::dump(header);
    text.append((8 - text.size() % 8) % 8, ' ');
    const uint64_t n = text.size();

    std::vector<std::pair<const void*, size_t>> parts{{&n, 8}, {text.data(), text.size()}};
    for (const Tensor& c : host) parts.emplace_back(c.raw_data(), c.nbytes());
    write_file_atomic(path, parts);
}

void write_file_atomic(const std::string& path, const std::vector<std::pair<const void*, size_t>>& parts) {
    const std::string tmp = path + ".tmp";
    std::error_code ec;
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        if (!f) AMS_FAIL(path, ": cannot open '", tmp, "' for writing: ", std::strerror(errno));
        for (const auto& [p, bytes] : parts) f.write(static_cast<const char*>(p), (std::streamsize)bytes);
        f.close();
        if (!f) {
            std::filesystem::remove(tmp, ec);
            AMS_FAIL(path, ": write failed (disk full?)");
        }
    }
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        std::error_code ignored;
        std::filesystem::remove(tmp, ignored);
        AMS_FAIL(path, ": cannot rename '", tmp, "' into place: ", ec.message());
    }
}

}  // namespace ams
