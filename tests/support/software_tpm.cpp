#include "tests/support/software_tpm.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

namespace thingmux::test {

namespace fs = std::filesystem;

bool have(const std::string& tool, const std::string& package) {
    if (run_command({"sh", "-c", "command -v " + tool}) == 0) return true;
    ADD_FAILURE() << tool << " is missing: install the Debian package " << package << " (scripts/bootstrap.sh)";
    return false;
}

bool have_file(const std::string& file, const std::string& package) {
    if (fs::exists(file)) return true;
    ADD_FAILURE() << file << " is missing: install the Debian package " << package << " (scripts/bootstrap.sh)";
    return false;
}

bool have_software_tpm() {
    return have("swtpm", "swtpm") && have_file("/usr/lib/x86_64-linux-gnu/ossl-modules/tpm2.so", "tpm2-openssl");
}

software_tpm::software_tpm(const fs::path& dir) {
    fs::create_directories(dir);
    // The control port is the TCTI's port + 1, which free_tcp_port() did not check: when another
    // process holds it (or takes either port meanwhile), swtpm exits, and new ports are tried.
    for (int attempt = 1; attempt <= 5; ++attempt) {
        if (attempt > 1) {
            port = free_tcp_port();
            ctrl = static_cast<std::uint16_t>(port + 1);
        }
        proc.emplace(std::vector<std::string>{"swtpm", "socket", "--tpm2", "--server", "type=tcp,port=" + std::to_string(port),
                                              "--ctrl", "type=tcp,port=" + std::to_string(ctrl), "--flags",
                                              "not-need-init,startup-clear", "--tpmstate", "dir=" + dir.string()},
                     dir / ("swtpm-" + std::to_string(attempt) + ".log"));
        if (eventually([&] { return !proc->running() || tcp_accepts(port); }, 10'000) && proc->running()) return;
        proc.reset();
    }
    throw std::runtime_error("swtpm did not start on 5 pairs of ports (see " + dir.string() + "/swtpm-*.log)");
}

}  // namespace thingmux::test
