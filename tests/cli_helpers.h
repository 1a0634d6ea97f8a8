// The amsnet binary from the tests: run it and read what it printed; a scratch folder with a tiny
// model and a real odd-sized photo.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "models/model_file.h"
#include "train/trainer.h"

namespace ams::test {

struct Run {
    int code;
    std::string out;
};

// Runs `amsnet ARGS` (the binary built beside the tests; AMS_BIN overrides it), with `env`
// (NAME=VALUE ..., or a wrapper command such as `timeout ...`) in front of it.
inline Run amsnet(const std::string& args, const std::string& env = "") {
    namespace fs = std::filesystem;
    const char* bin = std::getenv("AMS_BIN");
    if (!bin) bin = AMS_BIN_DEFAULT;
    // Per process: two test runs on one machine must not read each other's output.
    const fs::path log = fs::temp_directory_path() / ("amsnet_cli_test_" + std::to_string(getpid()) + ".log");
    const std::string command = env + (env.empty() ? "" : " ") + bin + " " + args + " > " + log.string() + " 2>&1";
    int status = std::system(command.c_str());
    std::stringstream ss;
    ss << std::ifstream(log).rdbuf();
    fs::remove(log);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128, ss.str()};
}

// Runs `amsnet ARGS` in the background, sends it `signal` (INT, TERM, ...) once its output holds
// `after` (or after 60 s), then `signal` again `again` seconds later if again >= 0; waits for it.
inline Run amsnet_signalled(const std::string& args, const std::string& signal, const std::string& after,
                            double again = -1) {
    namespace fs = std::filesystem;
    const char* bin = std::getenv("AMS_BIN");
    if (!bin) bin = AMS_BIN_DEFAULT;
    const fs::path log = fs::temp_directory_path() / ("amsnet_cli_sig_" + std::to_string(getpid()) + ".log");
    const std::string l = log.string();
    std::string script = std::string(bin) + " " + args + " > " + l + " 2>&1 & p=$!; i=0; while [ $i -lt 600 ] && ! grep -qF -- '" +
                         after + "' " + l + "; do sleep 0.1; i=$((i+1)); done; kill -" + signal + " $p;";
    if (again >= 0) script += " sleep " + std::to_string(again) + "; kill -" + signal + " $p 2>/dev/null;";
    script += " wait $p";
    const int status = std::system(script.c_str());  // sh -c
    std::stringstream ss;
    ss << std::ifstream(log).rdbuf();
    fs::remove(log);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128, ss.str()};
}

// A refused command: exit status 1, an error message that contains `needle`.
inline void expect_error(const std::string& args, const std::string& needle) {
    Run r = amsnet(args);
    INFO("amsnet ", args, "\n", r.out);
    CHECK(r.code == 1);
    CHECK(r.out.find("error") != std::string::npos);
    CHECK(r.out.find(needle) != std::string::npos);
}

struct Fixture {
    std::filesystem::path dir = std::filesystem::temp_directory_path() / ("amsnet_cli_" + std::to_string(getpid()));
    std::string weights, image;
    Fixture() {
        std::filesystem::remove_all(dir);
        std::filesystem::create_directories(dir);
        Restormer net(preset_config("tiny"));
        net.init(1);
        weights = (dir / "tiny.safetensors").string();
        save_model(weights, net);
        image = data_path("sidd-samples/NOISY_11.png");  // 241x241: odd size
    }
    ~Fixture() { std::filesystem::remove_all(dir); }
    std::string p(const std::string& f) const { return (dir / f).string(); }
};

}  // namespace ams::test
