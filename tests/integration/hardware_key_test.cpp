// The Thing's key outside PEM files (docs/identity.md), end to end against the AWS-like
// broker: a key generated inside a softhsm2 token (PKCS#11, libp11's engine), a key made by a
// software TPM (swtpm, tpm2-openssl provider), and a PKCS#12 bundle. Each connects, carries
// messages both ways, and reconnects after a broker restart; the errors a user must act on (wrong
// PIN, wrong password) are said clearly while thingmuxd keeps running.
#include "tests/support/broker_fixture.hpp"
#include "tests/support/daemon_fixture.hpp"
#include "tests/support/process.hpp"
#include "tests/support/round_trip.hpp"
#include "tests/support/software_tpm.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <sys/stat.h>
#include <filesystem>
#include <optional>
#include <string>

namespace thingmux::test {
namespace {

namespace fs = std::filesystem;

const std::string softhsm_module = "/usr/lib/softhsm/libsofthsm2.so";
const std::string thing = "gateway-01";

// Whether any file under `dir` holds a PEM private key.
std::optional<fs::path> file_with_private_key(const fs::path& dir) {
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
        if (e.is_regular_file() && read_file(e.path()).find("PRIVATE KEY") != std::string::npos) return e.path();
    }
    return std::nullopt;
}

bool running(const daemon_fixture& d) { return d.pid() > 0 && ::kill(d.pid(), 0) == 0; }

// A softhsm2 token of its own (its softhsm2.conf and token directory in `dir`) holding a P-256
// key pair generated inside it, and the Thing certificate the broker's CA issued for that key.
struct softhsm_token {
    fs::path dir;
    std::string env;  // SOFTHSM2_CONF=...
    std::string pin = "4711";
    fs::path cert;

    softhsm_token(const broker_fixture& broker, const fs::path& where) : dir(where) {
        fs::create_directories(dir / "tokens");
        write_file(dir / "softhsm2.conf", "directories.tokendir = " + (dir / "tokens").string() +
                                              "\nobjectstore.backend = file\nlog.level = ERROR\n");
        env = "SOFTHSM2_CONF=" + (dir / "softhsm2.conf").string();
        run_or_throw({"env", env, "softhsm2-util", "--init-token", "--free", "--label", "thing", "--pin", pin, "--so-pin", "5678"});
        run_or_throw({"env", env, "pkcs11-tool", "--module", softhsm_module, "--token-label", "thing", "--login", "--pin", pin,
                      "--keypairgen", "--key-type", "EC:prime256v1", "--label", "device", "--id", "01"});
        const auto csr = dir / "thing.csr";
        run_or_throw({"env", env, "openssl", "req", "-new", "-engine", "pkcs11", "-keyform", "engine", "-key",
                      "pkcs11:token=thing;object=device;type=private?pin-value=" + pin, "-subj", "/CN=" + thing, "-out", csr.string()});
        cert = dir / "thing.crt";
        broker.sign_csr(csr, cert);
    }
    [[nodiscard]] std::string key_uri() const {
        return "pkcs11:token=thing;object=device;type=private?module-path=" + softhsm_module;
    }
    static void write_file(const fs::path& p, const std::string& text) { run_or_throw({"sh", "-c", "printf '%s' \"$1\" > \"$2\"", "sh", text, p.string()}); }
};

daemon_setup token_setup(const softhsm_token& token, const fs::path& pin_file) {
    daemon_setup s;
    s.client_certificate = false;
    s.thing = "cert: " + token.cert.string() + "\nkey: \"" + token.key_uri() + "\"\nkey_pin: " + pin_file.string();
    s.env = {token.env};
    return s;
}

// Softhsm2: the key never leaves the token; thingmuxd signs with it through the engine.
TEST(HardwareKey, Pkcs11TokenKeyConnectsRoundTripsAndReconnects) {
    if (!have("softhsm2-util", "softhsm2") || !have("pkcs11-tool", "opensc") ||
        !have_file("/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so", "libengine-pkcs11-openssl"))
        return;
    broker_fixture broker;
    const softhsm_token token(broker, broker.dir() / "softhsm");
    const auto pin = secret_file(broker.dir(), "pin", token.pin + "\n");
    daemon_fixture d(broker, token_setup(token, pin));
    expect_round_trip(broker, d, 5);
    broker.restart();
    expect_round_trip(broker, d, 5, 1, "after-restart");
    EXPECT_GE(broker_connections(broker, thing), 2U);
    // The key is in the token only: no file of the token, the daemon or the test holds a PEM key,
    // and thingmuxd has the token's library loaded.
    for (const auto& dir : {token.dir, d.dir()}) {
        const auto found = file_with_private_key(dir);
        EXPECT_FALSE(found) << found.value_or("");
    }
    EXPECT_NE(read_file("/proc/" + std::to_string(d.pid()) + "/maps").find("libsofthsm2.so"), std::string::npos);
    EXPECT_FALSE(log_has(d, token.pin)) << "the PIN must never be logged";
}

TEST(HardwareKey, Pkcs11CertificateFromTheToken) {
    if (!have("softhsm2-util", "softhsm2") || !have("pkcs11-tool", "opensc")) return;
    broker_fixture broker;
    const softhsm_token token(broker, broker.dir() / "softhsm");
    run_or_throw({"env", token.env, "pkcs11-tool", "--module", softhsm_module, "--token-label", "thing", "--login", "--pin",
                  token.pin, "--write-object", token.cert.string(), "--type", "cert", "--label", "device", "--id", "01"});
    const auto pin = secret_file(broker.dir(), "pin", token.pin);
    auto setup = token_setup(token, pin);
    setup.thing = "cert: \"pkcs11:token=thing;object=device;type=cert\"\nkey: \"" + token.key_uri() + "\"\nkey_pin: " + pin.string();
    daemon_fixture d(broker, setup);
    expect_round_trip(broker, d, 3);
}

TEST(HardwareKey, WrongPinIsSaidClearlyAndTheDaemonKeepsRunning) {
    if (!have("softhsm2-util", "softhsm2") || !have("pkcs11-tool", "opensc")) return;
    broker_fixture broker;
    const softhsm_token token(broker, broker.dir() / "softhsm");
    const auto pin = secret_file(broker.dir(), "pin", "0000");
    daemon_fixture d(broker, token_setup(token, pin));
    EXPECT_TRUE(eventually([&] { return log_has(d, "the token refused the PIN"); }, 15'000)) << read_file(d.log_file());
    // Not offered again: a real token locks itself after a few wrong PINs.
    EXPECT_TRUE(eventually([&] { return log_has(d, "not trying it again"); }, 15'000)) << read_file(d.log_file());
    EXPECT_FALSE(log_has(d, "0000"));
    EXPECT_TRUE(running(d));
    EXPECT_EQ(broker_connections(broker, thing), 0U);
}

TEST(HardwareKey, Tpm2KeyConnectsRoundTripsAndReconnects) {
    if (!have_software_tpm()) return;
    broker_fixture broker;
    const auto dir = broker.dir() / "tpm";
    software_tpm tpm(dir / "state");
    const std::string env = "TPM2OPENSSL_TCTI=" + tpm.tcti();
    const auto key = dir / "thing.tss";
    const auto csr = dir / "thing.csr";
    run_or_throw({"env", env, "openssl", "genpkey", "-provider", "tpm2", "-provider", "default", "-algorithm", "EC", "-pkeyopt",
                  "group:P-256", "-out", key.string()});
    run_or_throw({"env", env, "openssl", "req", "-new", "-provider", "tpm2", "-provider", "default", "-key", key.string(),
                  "-subj", "/CN=" + thing, "-out", csr.string()});
    const auto cert = csr.parent_path() / "thing.crt";
    broker.sign_csr(csr, cert);
    ASSERT_NE(read_file(key).find("BEGIN TSS2 PRIVATE KEY"), std::string::npos);
    daemon_setup s;
    s.client_certificate = false;
    s.thing = "cert: " + cert.string() + "\nkey: " + key.string();
    s.top = "tpm2_tcti: \"" + tpm.tcti() + "\"";  // the daemon's environment has no TPM2OPENSSL_TCTI
    daemon_fixture d(broker, s);
    expect_round_trip(broker, d, 5);
    broker.restart();
    expect_round_trip(broker, d, 5, 1, "after-restart");
    EXPECT_GE(broker_connections(broker, thing), 2U);
}

TEST(HardwareKey, UnreachableTpmIsSaidWithItsTcti) {
    if (!have_software_tpm()) return;
    broker_fixture broker;
    const auto dir = broker.dir() / "tpm";
    const auto key = dir / "thing.tss";
    std::string tcti;
    {
        software_tpm tpm(dir / "state");
        tcti = tpm.tcti();
        run_or_throw({"env", "TPM2OPENSSL_TCTI=" + tcti, "openssl", "genpkey", "-provider", "tpm2", "-provider", "default",
                      "-algorithm", "EC", "-pkeyopt", "group:P-256", "-out", key.string()});
    }  // the TPM is gone
    daemon_setup s;
    s.client_certificate = false;
    s.thing = "cert: " + broker.thing(thing).cert.string() + "\nkey: " + key.string();
    s.top = "tpm2_tcti: \"" + tcti + "\"";
    daemon_fixture d(broker, s);
    EXPECT_TRUE(eventually([&] { return log_has(d, "cannot reach the TPM through OpenSSL's tpm2 provider with TCTI " + tcti); },
                           15'000))
        << read_file(d.log_file());
    EXPECT_FALSE(log_has(d, "needs a configuration change")) << "an unreachable TPM may come back\n" << read_file(d.log_file());
    EXPECT_TRUE(running(d));
}

TEST(HardwareKey, Pkcs12BundleConnectsAndAWrongPasswordIsSaidClearly) {
    broker_fixture broker;
    const auto id = broker.thing(thing);
    const auto bundle = broker.dir() / "thing.p12";
    run_or_throw({"openssl", "pkcs12", "-export", "-inkey", id.key.string(), "-in", id.cert.string(), "-certfile",
                  broker.ca_file().string(), "-passout", "pass:bundle-secret", "-out", bundle.string()});
    ::chmod(bundle.c_str(), 0600);
    const auto password = secret_file(broker.dir(), "p12-password", "bundle-secret\n");
    daemon_setup s;
    s.client_certificate = false;
    s.thing = "pkcs12: " + bundle.string() + "\npkcs12_password: " + password.string();
    {
        daemon_fixture d(broker, s);
        expect_round_trip(broker, d, 3);
    }
    const auto wrong = secret_file(broker.dir(), "p12-wrong", "not-it");
    s.thing = "pkcs12: " + bundle.string() + "\npkcs12_password: " + wrong.string();
    daemon_fixture d(broker, s);
    EXPECT_TRUE(eventually([&] { return log_has(d, "wrong password for PKCS#12 bundle " + bundle.string()); }, 15'000))
        << read_file(d.log_file());
    EXPECT_TRUE(running(d));
}

}  // namespace
}  // namespace thingmux::test
