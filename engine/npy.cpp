#include "engine/npy.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/safetensors.h"  // write_file_atomic

namespace ams {

static_assert(std::endian::native == std::endian::little, "npy I/O assumes a little-endian host");

namespace {

// The header is a Python dict literal, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// This reads exactly that subset: quoted strings, True/False and tuples of integers.
struct HeaderParser {
    const std::string& s;
    const std::string& path;
    size_t i = 0;

    [[noreturn]] void fail(const std::string& msg) const {
        AMS_FAIL(path, ": bad .npy header: ", msg, " at character ", i, " of: ",
                 s.substr(0, std::min<size_t>(200, s.find_last_not_of(" \n") + 1)));
    }
    void ws() {
        while (i < s.size() && std::isspace((unsigned char)s[i])) ++i;
    }
    bool eat(char c) {
        ws();
        if (i < s.size() && s[i] == c) return ++i, true;
        return false;
    }
    void need(char c) {
        if (!eat(c)) fail(std::string("expected '") + c + "'");
    }
    std::string quoted() {
        ws();
        if (i >= s.size() || (s[i] != '\'' && s[i] != '"')) fail("expected a quoted string");
        const char q = s[i++];
        const size_t end = s.find(q, i);
        if (end == std::string::npos) fail("unterminated string");
        std::string r = s.substr(i, end - i);
        i = end + 1;
        return r;
    }
    bool boolean() {
        ws();
        if (s.compare(i, 4, "True") == 0) return i += 4, true;
        if (s.compare(i, 5, "False") == 0) return i += 5, false;
        fail("expected True or False");
    }
    Shape tuple() {
        need('(');
        Shape shape;
        while (!eat(')')) {
            ws();
            size_t start = i;
            int64_t v = 0;
            while (i < s.size() && std::isdigit((unsigned char)s[i])) {
                if (v > (INT64_MAX - 9) / 10) fail("dimension too large");
                v = v * 10 + (s[i++] - '0');
            }
            if (i == start) fail("expected a non-negative integer dimension");
            if (i < s.size() && s[i] == 'L') ++i;  // Python 2 long suffix
            shape.push_back(v);
            if (!eat(',')) {
                need(')');
                break;
            }
        }
        return shape;
    }
};

struct NpyHeader {
    Shape shape;
    DType dtype;
    uint64_t bytes;  // of the data, which follows the header where `f` now stands
};

// Reads and checks the header of the .npy file open in `f`, and that the data is all there.
NpyHeader read_header(const std::string& path, std::ifstream& f) {
    f.seekg(0, std::ios::end);
    const uint64_t file_bytes = (uint64_t)f.tellg();
    f.seekg(0);

    unsigned char pre[12] = {};
    f.read(reinterpret_cast<char*>(pre), (std::streamsize)std::min<uint64_t>(12, file_bytes));
    if (file_bytes < 10 || std::memcmp(pre, "\x93NUMPY", 6) != 0)
        AMS_FAIL(path, ": not a .npy file (bad magic; expected \\x93NUMPY)");
    const int major = pre[6];
    uint64_t header_len = 0, header_start = 0;
    if (major == 1) {
        header_len = pre[8] | (uint64_t)pre[9] << 8;
        header_start = 10;
    } else if ((major == 2 || major == 3) && file_bytes >= 12) {
        header_len = pre[8] | (uint64_t)pre[9] << 8 | (uint64_t)pre[10] << 16 | (uint64_t)pre[11] << 24;
        header_start = 12;
    } else {
        AMS_FAIL(path, ": unsupported .npy format version ", major, ".", (int)pre[7]);
    }
    if (header_len > file_bytes - header_start) AMS_FAIL(path, ": truncated .npy header");
    std::string header(header_len, '\0');
    f.seekg((std::streamoff)header_start);
    f.read(header.data(), (std::streamsize)header_len);
    if (!f) AMS_FAIL(path, ": read error in the .npy header");

    HeaderParser p{header, path};
    std::string descr;
    bool fortran = false, has_descr = false, has_order = false, has_shape = false;
    Shape shape;
    p.need('{');
    while (!p.eat('}')) {
        const std::string key = p.quoted();
        p.need(':');
        if (key == "descr") descr = p.quoted(), has_descr = true;
        else if (key == "fortran_order") fortran = p.boolean(), has_order = true;
        else if (key == "shape") shape = p.tuple(), has_shape = true;
        else p.fail("unexpected key '" + key + "'");
        if (!p.eat(',')) {
            p.need('}');
            break;
        }
    }
    if (!has_descr || !has_order || !has_shape) p.fail("missing descr, fortran_order or shape");
    DType dtype;
    if (descr == "<f4") dtype = DType::F32;
    else if (descr == "<f8") dtype = DType::F64;
    else AMS_FAIL(path, ": unsupported .npy dtype '", descr, "' (supported: '<f4', '<f8')");
    if (fortran) AMS_FAIL(path, ": Fortran-order .npy arrays are not supported (save a C-order array)");

    // Needed bytes with overflow checks (a zero dim makes the array empty whatever the others are).
    uint64_t bytes = dtype_size(dtype), nonzero = 1;
    bool overflow = false, has_zero = false;
    for (int64_t d : shape) {
        has_zero |= d == 0;
        if (d) overflow |= __builtin_mul_overflow(nonzero, (uint64_t)d, &nonzero) ||
                           __builtin_mul_overflow(bytes, (uint64_t)d, &bytes);
    }
    if (overflow || nonzero > (uint64_t)INT64_MAX) AMS_FAIL(path, ": .npy shape ", shape_str(shape), " is too large");
    if (has_zero) bytes = 0;
    const uint64_t data_start = header_start + header_len;
    if (bytes > file_bytes - data_start)
        AMS_FAIL(path, ": truncated .npy data: shape ", shape_str(shape), " needs ", bytes, " bytes, the file has ",
                 file_bytes - data_start);
    return {shape, dtype, bytes};
}

// Opens `path` for reading, with errors naming it.
std::ifstream open_npy(const std::string& path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
        AMS_FAIL(path, ": cannot read .npy file: ",
                 std::filesystem::exists(path, ec) ? "not a regular file" : "no such file");
    std::ifstream f(path, std::ios::binary);
    if (!f) AMS_FAIL(path, ": cannot open .npy file: ", std::strerror(errno));
    return f;
}

}  // namespace

Shape npy_shape(const std::string& path) {
    std::ifstream f = open_npy(path);
    return read_header(path, f).shape;
}

Tensor load_npy(const std::string& path) {
    std::ifstream f = open_npy(path);
    const auto [shape, dtype, bytes] = read_header(path, f);
    Tensor t = Tensor::empty(shape, dtype, Device::CPU);
    if (bytes) {
        f.read(static_cast<char*>(t.raw_data()), (std::streamsize)bytes);
        if (!f) AMS_FAIL(path, ": read error in the .npy data");
    }
    return t;
}

void save_npy(const std::string& path, const Tensor& t) {
    if (!t.defined()) AMS_FAIL(path, ": cannot save an undefined tensor");
    const DType dtype = t.dtype() == DType::F64 ? DType::F64 : DType::F32;
    Tensor c = t.to(Device::CPU).to(dtype).contiguous();

    std::string shape = "(";
    for (int64_t d : c.shape()) shape += std::to_string(d) + ", ";
    if (c.ndim() == 1) shape.pop_back();  // Python's one-element tuple: (5,)
    else if (c.ndim() > 1) shape.resize(shape.size() - 2);
    shape += ")";
    std::string header = std::string("{'descr': '") + (dtype == DType::F64 ? "<f8" : "<f4") +
                         "', 'fortran_order': False, 'shape': " + shape + ", }";

    // Version 1.0 has a 2-byte header length; 2.0 (4 bytes) only when that does not fit.
    const bool v2 = header.size() + 1 + 10 + 64 > 65535;
    const size_t prefix = v2 ? 12 : 10;
    header.append((64 - (prefix + header.size() + 1) % 64) % 64, ' ');
    header += '\n';
    std::string pre = "\x93NUMPY";
    pre += (char)(v2 ? 2 : 1);
    pre += '\0';
    for (size_t k = 0; k < prefix - 8; ++k) pre += (char)((header.size() >> (8 * k)) & 0xFF);

    write_file_atomic(path, {{pre.data(), pre.size()}, {header.data(), header.size()}, {c.raw_data(), c.nbytes()}});
}

}  // namespace ams
