// The amsnet binary from the tests: run it and read what it printed; a scratch folder with a tiny
// model and a real odd-sized photo.
#pragma once
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <csignal>
#include <sys/wait.h>
#include <unistd.h>

#include "files.h"
#include "helpers.h"
#include "models/model_file.h"
#include "train/trainer.h"

namespace ams::test {

struct Run {
    int code;
    std::string out;
};

// The amsnet binary built beside the tests; AMS_BIN overrides it.
inline std::string amsnet_bin() {
    const char* bin = std::getenv("AMS_BIN");
    return bin ? bin : AMS_BIN_DEFAULT;
}

// Where a run's output goes: per process, so that two test runs on one machine do not read each
// other's.
inline std::filesystem::path amsnet_log(const char* tag) {
    return std::filesystem::temp_directory_path() / ("amsnet_cli_" + std::string(tag) + "_" + std::to_string(getpid()) + ".log");
}

// Runs `amsnet ARGS` with `env` (NAME=VALUE ..., or a wrapper command such as `timeout ...`) in
// front of it.
inline Run amsnet(const std::string& args, const std::string& env = "") {
    const std::filesystem::path log = amsnet_log("test");
    const std::string command = env + (env.empty() ? "" : " ") + amsnet_bin() + " " + args + " > " + log.string() + " 2>&1";
    int status = std::system(command.c_str());
    Run r{WIFEXITED(status) ? WEXITSTATUS(status) : 128, read_bytes(log.string())};
    std::filesystem::remove(log);
    return r;
}

// What amsnet_signalled saw: the exit status (128 + the signal for a process a signal ended, as in
// a shell), the output, whether the second signal was sent (the process was still running) and
// the output at that moment.
struct SignalledRun {
    int code;
    std::string out;
    bool second_sent = false;
    std::string out_at_second;
};

// Runs `amsnet ARGS` with SIGINT's default action (whatever the test itself inherited; with
// ignore_int, ignored, as in a shell script's background job), sends it `sig` once its output
// holds `after` (giving up waiting after about 60 s), then `then` (default: sig again) if it is
// still running `again` seconds later (again >= 0), and waits for it to end; after another 120 s
// it is killed, so that a test fails instead of hanging.
inline SignalledRun amsnet_signalled(const std::string& args, int sig, const std::string& after, double again = -1,
                                     int then = 0, bool ignore_int = false) {
    const std::filesystem::path log = amsnet_log("sig");
    const std::string command = "exec " + amsnet_bin() + " " + args + " > " + log.string() + " 2>&1";
    const pid_t pid = fork();
    REQUIRE(pid >= 0);  // never kill(-1, ...) below
    if (pid == 0) {
        std::signal(SIGINT, ignore_int ? SIG_IGN : SIG_DFL);
        std::signal(SIGTERM, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);
        execl("/bin/sh", "sh", "-c", command.c_str(), (char*)nullptr);
        _exit(127);
    }
    int status = 0;
    bool ended = false;
    auto wait_up_to = [&](double seconds) {  // true once it has ended, polling every 50 ms
        const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
        while (!ended) {
            if (waitpid(pid, &status, WNOHANG) == pid) ended = true;
            else if (std::chrono::steady_clock::now() >= until) break;
            else usleep(50000);
        }
        return ended;
    };
    auto output = [&] { return read_bytes(log.string()); };
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!ended && output().find(after) == std::string::npos && std::chrono::steady_clock::now() < give_up)
        wait_up_to(0.05);
    if (!ended) kill(pid, sig);
    SignalledRun r{0, "", false, ""};
    if (again >= 0 && !wait_up_to(again)) {
        r.out_at_second = output();
        kill(pid, then ? then : sig);
        r.second_sent = true;
    }
    if (!wait_up_to(120)) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 128;
    r.out = output();
    std::filesystem::remove(log);
    return r;
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
