#include "engine/image_metadata.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>

#include "engine/png_chunks.h"

namespace ams {

namespace {

// Profiles and Exif blocks are kilobytes; a chunk claiming more is not metadata worth a gigabyte.
constexpr size_t kMaxBlock = 64u << 20;
const char kExifId[6] = {'E', 'x', 'i', 'f', 0, 0};
const char kIccId[12] = {'I', 'C', 'C', '_', 'P', 'R', 'O', 'F', 'I', 'L', 'E', 0};
const std::string kXmpId("http://ns.adobe.com/xap/1.0/", 29);  // with its NUL
const std::string kXmpKey("XML:com.adobe.xmp", 18);            // PNG iTXt keyword, with its NUL
const unsigned char kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

bool starts_with(const std::string& s, const char* id, size_t n) { return s.size() >= n && std::memcmp(s.data(), id, n) == 0; }

// The segments before the image data (SOS): metadata always precedes it.
ImageMetadata read_jpeg(std::ifstream& f) {
    ImageMetadata m;
    std::map<int, std::string> icc;  // sequence number (1-based) -> part
    int icc_count = 0;
    bool icc_ok = true;
    for (;;) {
        if (f.get() != 0xFF) break;
        int marker = f.get();
        while (marker == 0xFF) marker = f.get();  // fill bytes
        if (marker == EOF || marker == 0xDA || marker == 0xD9) break;
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) continue;  // no length field
        unsigned char lb[2];
        if (!f.read(reinterpret_cast<char*>(lb), 2)) break;
        const size_t len = (size_t)(lb[0] << 8 | lb[1]);
        if (len < 2) break;
        if (marker != 0xE1 && marker != 0xE2) {
            f.seekg((std::streamoff)(len - 2), std::ios::cur);
            continue;
        }
        std::string d(len - 2, '\0');
        if (!f.read(d.data(), (std::streamsize)d.size())) break;
        if (marker == 0xE1 && m.exif.empty() && starts_with(d, kExifId, 6)) {
            m.exif = d.substr(6);
        } else if (marker == 0xE1 && m.xmp.empty() && starts_with(d, kXmpId.data(), kXmpId.size())) {
            m.xmp = d.substr(kXmpId.size());
        } else if (marker == 0xE2 && d.size() > 14 && starts_with(d, kIccId, 12)) {
            const int seq = (unsigned char)d[12], count = (unsigned char)d[13];
            icc_ok = icc_ok && (icc_count == 0 || count == icc_count) && icc.emplace(seq, d.substr(14)).second;
            icc_count = count;
        }
    }
    // Every part 1..count, each once.
    if (icc_ok && icc_count > 0 && (int)icc.size() == icc_count && icc.begin()->first == 1 &&
        icc.rbegin()->first == icc_count)
        for (const auto& part : icc) m.icc += part.second;
    return m;
}

uint32_t be32(const unsigned char* p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }

ImageMetadata read_png(std::ifstream& f) {
    ImageMetadata m;
    unsigned char h[8];
    while (f.read(reinterpret_cast<char*>(h), 8)) {
        const size_t len = be32(h);
        const std::string type(reinterpret_cast<char*>(h + 4), 4);
        if (type == "IEND" || len > 0x7FFFFFFFu) break;
        if ((type != "eXIf" && type != "iCCP" && type != "iTXt") || len > kMaxBlock) {
            f.seekg((std::streamoff)len + 4, std::ios::cur);  // data and CRC
            continue;
        }
        std::string d(len, '\0');
        if (!f.read(d.data(), (std::streamsize)len)) break;
        f.seekg(4, std::ios::cur);
        if (type == "eXIf" && m.exif.empty()) {
            m.exif = starts_with(d, kExifId, 6) ? d.substr(6) : d;  // some writers keep JPEG's "Exif\0\0"
        } else if (type == "iCCP" && m.icc.empty()) {
            // profile name (1-79 bytes), NUL, compression method 0 (zlib), the zlib stream
            const size_t nul = d.find('\0');
            if (nul != std::string::npos && nul >= 1 && nul <= 79 && nul + 2 <= d.size() && d[nul + 1] == 0 &&
                !png::zlib_inflate(d.substr(nul + 2), kMaxBlock, m.icc))
                m.icc.clear();
        } else if (type == "iTXt" && m.xmp.empty() && starts_with(d, kXmpKey.data(), kXmpKey.size())) {
            // keyword, NUL, compression flag and method, language tag, NUL, translated keyword, NUL, text
            const size_t lang = kXmpKey.size() + 2, tkey = d.find('\0', lang);
            const size_t text = tkey == std::string::npos ? tkey : d.find('\0', tkey + 1);
            if (text != std::string::npos && d[kXmpKey.size()] == 0) m.xmp = d.substr(text + 1);
            else if (text != std::string::npos && d[kXmpKey.size()] == 1 && d[kXmpKey.size() + 1] == 0 &&
                     !png::zlib_inflate(d.substr(text + 1), kMaxBlock, m.xmp))
                m.xmp.clear();
        }
    }
    return m;
}

// marker, length, then head (the segment's identifier and fields) and n bytes of data.
void put_jpeg_segment(std::vector<unsigned char>& out, unsigned char marker, const std::string& head, const char* data,
                      size_t n) {
    const size_t len = 2 + head.size() + n, at = out.size();
    out.resize(at + 2 + len);
    unsigned char* p = out.data() + at;
    p[0] = 0xFF, p[1] = marker, p[2] = (unsigned char)(len >> 8), p[3] = (unsigned char)(len & 0xFF);
    std::memcpy(p + 4, head.data(), head.size());
    std::memcpy(p + 4 + head.size(), data, n);
}

// A profile's colour space (header bytes 16-19) when it is one of ICC's and not the one of the
// written samples ("GRAY" for 1 or 2 channels, "RGB " for 3 or 4): a grey photo's profile on a
// 3-channel JPEG, or a CMYK JPEG's profile on the RGB result, would misdescribe the colours.
// Empty when it fits, or the bytes are no recognisable profile (left as they are).
std::string mismatched_colour_space(const std::string& icc, int channels) {
    if (icc.size() < 128) return "";
    const std::string space = icc.substr(16, 4), want = channels <= 2 ? "GRAY" : "RGB ";
    static const char* known[] = {"GRAY", "RGB ", "CMYK", "CMY ", "Lab ", "XYZ ", "YCbr", "Luv ", "Yxy ", "HSV ", "HLS "};
    for (const char* k : known)
        if (space == k) return space == want ? "" : space;
    return "";
}

std::string embed_jpeg(std::vector<unsigned char>& file, const ImageMetadata& meta) {
    if (file.size() < 4 || file[0] != 0xFF || file[1] != 0xD8) return "not a JPEG stream";
    // After SOI and, where there is one, the JFIF APP0 segment that must come first.
    size_t at = 2;
    if (file.size() >= 6 && file[2] == 0xFF && file[3] == 0xE0) at = 4 + (size_t)(file[4] << 8 | file[5]);
    std::vector<unsigned char> seg;
    std::string lost;
    constexpr size_t kSegment = 65533;  // a segment's payload: 65535 less the length field
    if (!meta.exif.empty()) {
        if (meta.exif.size() <= kSegment - 6)
            put_jpeg_segment(seg, 0xE1, std::string(kExifId, 6), meta.exif.data(), meta.exif.size());
        else
            lost = "the Exif block (" + std::to_string(meta.exif.size()) + " bytes; a JPEG segment holds 65,527)";
    }
    if (!meta.icc.empty()) {
        constexpr size_t part = kSegment - 14;  // less "ICC_PROFILE\0", sequence and count
        const size_t count = (meta.icc.size() + part - 1) / part;
        if (count > 255) {
            lost += (lost.empty() ? "" : " and ") + std::string("the colour profile (over 255 JPEG segments)");
        } else {
            for (size_t i = 0; i < count; ++i) {
                const std::string head = std::string(kIccId, 12) + (char)(i + 1) + (char)count;
                put_jpeg_segment(seg, 0xE2, head, meta.icc.data() + i * part, std::min(part, meta.icc.size() - i * part));
            }
        }
    }
    if (!meta.xmp.empty()) {
        if (meta.xmp.size() <= kSegment - kXmpId.size())
            put_jpeg_segment(seg, 0xE1, kXmpId, meta.xmp.data(), meta.xmp.size());
        else
            lost += (lost.empty() ? "" : " and ") + std::string("the XMP packet (") + std::to_string(meta.xmp.size()) +
                    " bytes; a JPEG segment holds 65,504)";
    }
    file.insert(file.begin() + (std::ptrdiff_t)at, seg.begin(), seg.end());
    return lost;
}

std::string embed_png(std::vector<unsigned char>& file, const ImageMetadata& meta) {
    if (file.size() < 33 || std::memcmp(file.data(), kPngSignature, 8) != 0 || std::memcmp(file.data() + 12, "IHDR", 4) != 0)
        return "not a PNG stream";
    const size_t at = 8 + 12 + be32(file.data() + 8);  // after IHDR: both chunks must precede IDAT
    std::vector<unsigned char> chunks;
    if (!meta.icc.empty()) {
        const auto z = png::zlib_compress(reinterpret_cast<const unsigned char*>(meta.icc.data()), meta.icc.size());
        if (z.empty()) return "the colour profile (compression failed)";
        std::vector<unsigned char> d = {'I', 'C', 'C', ' ', 'P', 'r', 'o', 'f', 'i', 'l', 'e', 0, 0};
        d.insert(d.end(), z.begin(), z.end());
        png::put_chunk(chunks, "iCCP", d.data(), d.size());
    }
    if (!meta.exif.empty())
        png::put_chunk(chunks, "eXIf", reinterpret_cast<const unsigned char*>(meta.exif.data()), meta.exif.size());
    if (!meta.xmp.empty()) {  // uncompressed, no language: what XMP's own specification asks of PNG
        const std::string d = kXmpKey + std::string(4, '\0') + meta.xmp;
        png::put_chunk(chunks, "iTXt", reinterpret_cast<const unsigned char*>(d.data()), d.size());
    }
    file.insert(file.begin() + (std::ptrdiff_t)at, chunks.begin(), chunks.end());
    return "";
}

}  // namespace

bool stores_metadata(const std::string& ext) { return ext == ".jpg" || ext == ".jpeg" || ext == ".png"; }

ImageMetadata read_metadata(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    unsigned char sig[8] = {};
    if (!f.read(reinterpret_cast<char*>(sig), 2)) return {};
    if (sig[0] == 0xFF && sig[1] == 0xD8) return read_jpeg(f);
    if (f.read(reinterpret_cast<char*>(sig + 2), 6) && std::memcmp(sig, kPngSignature, 8) == 0) return read_png(f);
    return {};
}

std::string embed_metadata(std::vector<unsigned char>& file, const std::string& ext, const ImageMetadata& meta_in,
                           int channels) {
    if (meta_in.empty()) return "";
    const bool jpeg = ext == ".jpg" || ext == ".jpeg";
    if (stores_metadata(ext)) {
        ImageMetadata meta = meta_in;
        std::string dropped;
        const std::string space = mismatched_colour_space(meta.icc, jpeg ? 3 : channels);  // a JPEG here is YCbCr
        if (!space.empty()) {
            meta.icc.clear();
            dropped = "the colour profile (it describes " + space.substr(0, space.find_last_not_of(' ') + 1) +
                      " samples; these are " + (jpeg || channels > 2 ? "RGB" : "grey") + ")";
        }
        const std::string lost = jpeg ? embed_jpeg(file, meta) : embed_png(file, meta);
        return dropped + (dropped.empty() || lost.empty() ? "" : " and ") + lost;
    }
    std::vector<std::string> parts;
    if (!meta_in.exif.empty()) parts.push_back("the Exif block");
    if (!meta_in.icc.empty()) parts.push_back("the colour profile");
    if (!meta_in.xmp.empty()) parts.push_back("the XMP packet");
    std::string list;
    for (size_t i = 0; i < parts.size(); ++i)
        list += (i == 0 ? "" : i + 1 == parts.size() ? " and " : ", ") + parts[i];
    return list + " (" + ext + " files store none)";
}

}  // namespace ams
