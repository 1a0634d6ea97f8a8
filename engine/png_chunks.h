// PNG's chunk container (length, type, data, CRC-32), for what stb_image_write cannot write: the
// 16-bit PNG (image_io.cpp) and the metadata chunks (image_metadata.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ams::png {

inline uint32_t crc32(const unsigned char* p, size_t n) {
    static const auto table = [] {
        std::vector<uint32_t> t(256);
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }();
    uint32_t crc = ~0u;
    for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

inline void put_be32(std::vector<unsigned char>& out, uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back((unsigned char)(v >> s));
}

// Appends one chunk to out.
inline void put_chunk(std::vector<unsigned char>& out, const char type[4], const unsigned char* data, size_t n) {
    put_be32(out, (uint32_t)n);
    const size_t start = out.size();
    out.insert(out.end(), type, type + 4);
    if (n) out.insert(out.end(), data, data + n);
    put_be32(out, crc32(out.data() + start, n + 4));  // the CRC covers type and data
}

// zlib streams (what PNG's IDAT and iCCP hold), through stb in image_io.cpp. compress: empty on
// failure. inflate: false when the stream is corrupt or would exceed max_out bytes.
std::vector<unsigned char> zlib_compress(const unsigned char* data, size_t n);
bool zlib_inflate(const std::string& in, size_t max_out, std::string& out);

}  // namespace ams::png
