// Scratch folders and whole-file bytes for the test suites.
#pragma once
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include <unistd.h>

namespace ams::test {

// A fresh folder under the system's temporary one (unique per process and object), removed with
// everything in it at the end of the scope.
struct TempDir {
    std::filesystem::path dir;
    explicit TempDir(const std::string& tag) {
        dir = std::filesystem::temp_directory_path() /
              ("ams_test_" + tag + "_" + std::to_string(getpid()) + "_" + std::to_string(std::random_device{}()));
        std::filesystem::create_directories(dir);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    std::string operator/(const std::string& name) const { return (dir / name).string(); }
};

inline std::string read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), (std::streamsize)bytes.size());
}

}  // namespace ams::test
