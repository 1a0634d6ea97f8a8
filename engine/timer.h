// Wall-clock stopwatch and human-readable durations for progress lines.
#pragma once
#include <chrono>
#include <cstdio>
#include <string>

namespace ams {

struct Stopwatch {
    std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
    double seconds() const {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
};

// "1h02m", "3m05s", "12.3s"
inline std::string format_duration(double s) {
    char buf[32];
    if (s >= 3600) std::snprintf(buf, sizeof buf, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else if (s >= 60) std::snprintf(buf, sizeof buf, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else std::snprintf(buf, sizeof buf, "%.1fs", s);
    return buf;
}

}  // namespace ams
