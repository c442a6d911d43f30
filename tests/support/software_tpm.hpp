// A software TPM 2.0 (swtpm) for the tests of TPM keys (tpm2-openssl provider), and the checks
// that the tools those tests need are installed (a missing one fails the test, naming its package).
#pragma once

#include "tests/support/process.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace thingmux::test {

// Whether `tool` is on PATH; else a test failure naming the Debian package to install.
bool have(const std::string& tool, const std::string& package);
// Whether `file` exists; else a test failure naming the Debian package to install.
bool have_file(const std::string& file, const std::string& package);
// Whether swtpm and the tpm2-openssl provider are there (have() and have_file() of them).
bool have_software_tpm();

// swtpm on free ports with its state in `dir`; stopped with the object.
struct software_tpm {
    std::uint16_t port = free_tcp_port();
    std::uint16_t ctrl = static_cast<std::uint16_t>(port + 1);  // the swtpm TCTI's control port
    std::optional<child_process> proc;
    explicit software_tpm(const std::filesystem::path& dir);
    // For tpm2_tcti: and TPM2OPENSSL_TCTI.
    [[nodiscard]] std::string tcti() const { return "swtpm:host=127.0.0.1,port=" + std::to_string(port); }
};

}  // namespace thingmux::test
