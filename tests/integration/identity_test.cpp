// A Thing's identity in the real thingmuxd (docs/identity.md): provisioning by claim, a kill at
// each step of it, AWS IoT's refusals, and a rotation under load. The real daemon, the AWS-like
// mosquitto, and tests/support/fleet-responder answering CreateCertificateFromCsr and
// RegisterThing on it as AWS IoT does (the certificates it issues are signed by the test CA, so
// the broker accepts them, with the CSR's CN: the Thing's name, which the broker's ACL maps to the
// Thing's topics). What reaches the cloud is counted by an observer on the broker; the files are
// checked with thingmux::identity::key_matches_certificate and `openssl verify`.
#include "daemon/identity/identity_files.hpp"
#include "daemon/identity/key_material.hpp"
#include "tests/support/daemon_fixture.hpp"
#include "tests/support/dbus_fixture.hpp"
#include "tests/support/fleet_responder_fixture.hpp"
#include "tests/support/round_trip.hpp"
#include "tests/support/software_tpm.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace thingmux::test {
namespace {

namespace fs = std::filesystem;
using kind = fleet_responder_fixture::kind;

const std::string thing_name = "gateway-01";

// Where the daemon keeps the Thing's pair: a directory of its own, only its owner may enter.
struct pair_files {
    fs::path cert;
    fs::path key;
};

pair_files identity_dir(const broker_fixture& broker) {
    const auto dir = broker.dir() / ("thingmuxd-" + thing_name) / "identity";
    fs::create_directories(dir);
    fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace);
    return {dir / (thing_name + ".crt"), dir / (thing_name + ".key")};
}

// cert:, key:, provisioning: with the broker's claim, and a short back-off, for setup.thing.
// `enrollment` holds more lines of the provisioning: block (each "  key: value\n").
std::string provisioning_yaml(const broker_fixture& broker, const pair_files& f, const std::string& enrollment = {}) {
    const auto claim = broker.claim();
    return "cert: " + f.cert.string() + "\nkey: " + f.key.string() +
           "\nprovisioning:\n  template: thingmux-fleet\n  claim_cert: " + claim.cert.string() +
           "\n  claim_key: " + claim.key.string() + "\n  parameters: {ThingName: \"${thing}\"}\n" + enrollment +
           "backoff: {base: 100ms, cap: 1s}";
}

// The broker's own certificate of the Thing, copied where the daemon may replace it, and
// rotation: with `template_name` and `more` lines of that block (each "  key: value\n").
std::string rotation_yaml(const broker_fixture& broker, const pair_files& f, const std::string& template_name,
                          const std::string& more = {}) {
    fs::copy_file(broker.thing(thing_name).cert, f.cert, fs::copy_options::overwrite_existing);
    fs::copy_file(broker.thing(thing_name).key, f.key, fs::copy_options::overwrite_existing);
    fs::permissions(f.key, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace);
    return "cert: " + f.cert.string() + "\nkey: " + f.key.string() + "\nrotation:\n  template: " + template_name +
           "\n  parameters: {ThingName: \"${thing}\"}\n  timeout: 5s\n" + more + "backoff: {base: 100ms, cap: 1s}";
}

// A new key and a certificate of the test CA for it valid `days`, as the Thing's pair in `f`.
void short_lived_pair(const broker_fixture& broker, const pair_files& f, int days) {
    const auto csr = f.cert.parent_path().parent_path() / "short-lived.csr";
    std::string out;
    ASSERT_EQ(run_command({"openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                           "-keyout", f.key.string(), "-subj", "/CN=" + thing_name, "-out", csr.string()},
                          &out),
              0)
        << out;
    fs::permissions(f.key, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace);
    broker.sign_csr(csr, f.cert, days);
}

// The responder's default template with a pre-provisioning hook that says no to this Thing.
fleet_responder_fixture::options refusing_this_thing() {
    fleet_responder_fixture::options opts;
    opts.templates = {{.refused = {{"ThingName", thing_name}}}};
    return opts;
}

// The daemon's setup: the Thing's pair as `thing_yaml` says (not the broker's), the private bus
// when one is given.
daemon_setup identity_setup(std::string thing_yaml, const dbus_fixture* bus = nullptr) {
    daemon_setup setup;
    setup.client_certificate = false;
    if (bus != nullptr) setup.bus = bus->address();
    setup.thing = std::move(thing_yaml);
    return setup;
}

std::size_t occurrences(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
    return n;
}

// The directory holds exactly the Thing's certificate (one, of the test CA, CN gateway-01) and
// its key (mode 0600, the certificate's): nothing pending, nothing else. Returns the
// certificate's id (SHA-256 of the DER). A TSS2 key is checked in the TPM `tpm2_tcti` names.
std::string expect_one_matching_pair(const broker_fixture& broker, const pair_files& f, const std::string& tpm2_tcti = {}) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(f.cert.parent_path())) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{f.cert.filename().string(), f.key.filename().string()}))
        << "a pending file or a stray copy was left";
    if (!fs::exists(f.cert) || !fs::exists(f.key)) {
        ADD_FAILURE() << "no certificate or no key";
        return {};
    }
    struct stat st {};
    EXPECT_EQ(::stat(f.key.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600U) << "the key is readable by others";
    const auto cert = read_file(f.cert);
    const auto key = read_file(f.key);
    EXPECT_EQ(occurrences(cert, "-----BEGIN CERTIFICATE-----"), 1U) << cert;
    const auto matches = thingmux::identity::key_matches_certificate(key, cert, tpm2_tcti);
    EXPECT_TRUE(matches.has_value() && *matches) << "the key is not the certificate's";
    std::string out;
    EXPECT_EQ(run_command({"openssl", "verify", "-CAfile", broker.ca_file().string(), f.cert.string()}, &out), 0) << out;
    const auto info = thingmux::identity::inspect_certificate(cert);
    if (!info.has_value()) {
        ADD_FAILURE() << "the certificate does not parse";
        return {};
    }
    EXPECT_EQ(info->subject_cn, thing_name);
    return info->sha256_fingerprint;
}

// The certificate ids the responder issued and answered with "accepted".
std::vector<std::string> issued_ids(const fleet_responder_fixture& responder) {
    std::vector<std::string> ids;
    for (const auto& r : responder.records())
        if (r.what == kind::create_certificate && r.outcome == "accepted") ids.push_back(r.certificate_id);
    return ids;
}

std::string property(const dbus_fixture& bus, const std::string& name) {
    const auto r = bus.thing_property(name);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return r.output;
}

// Waits until the daemon's log holds `text`; fails with the log when it does not come.
void expect_logged(const daemon_fixture& daemon, const std::string& text, int timeout_ms = 20'000) {
    EXPECT_TRUE(eventually([&] { return log_has(daemon, text); }, timeout_ms))
        << "no '" << text << "' in the log:\n" << read_file(daemon.log_file());
}

// RotateCertificate over D-Bus (busctl, a timeout of a minute): exit code and output.
command_result rotate_over_dbus(const dbus_fixture& bus) {
    return bus.busctl({"--timeout=60", "call", "org.thingmux.Thingmux1", "/org/thingmux/Thingmux1/thing/gateway_2d01",
                       "org.thingmux.Thingmux1.Thing", "RotateCertificate"});
}

// ---- 1 -------------------------------------------------------------------------------------------

// The broker, its provisioning responder, a private bus, and the cloud's view of the Thing's topics.
struct identity_scene {
    broker_fixture broker;
    fleet_responder_fixture responder{broker};
    dbus_fixture bus;
    observer_subscription cloud{broker, "dt/gateway-01/#", "identity-observer"};
};

// The daemon starts with no certificate while the broker is down: apps connect, are told the
// Thing is being provisioned, and their QoS 1 publishes wait in the spool. Once the broker is
// back, the claim connection provisions the Thing (one CreateCertificateFromCsr, one
// RegisterThing), the pair is written, and every publish reaches the cloud on the Thing's own
// session.
TEST(IdentityTest, ProvisioningByClaimEndsInAWorkingSessionAndDeliversWhatAppsPublishedMeanwhile) {
    identity_scene scene;
    auto& [broker, responder, bus, cloud] = scene;
    ASSERT_TRUE(cloud.wait_ready());
    const auto files = identity_dir(broker);
    // Deterministically "while it provisions": the claim connection cannot get through yet. The
    // responder's session is persistent (QoS 1), so the broker keeps the request for it.
    broker.stop();

    daemon_fixture daemon(broker, identity_setup(provisioning_yaml(broker, files), &bus));

    ipc_client app(daemon.socket_path());
    EXPECT_NE(app.hello("early-app").link, ipc::link_state::connected);
    ASSERT_TRUE(eventually(
        [&] {
            app.drain();
            return std::any_of(app.states.begin(), app.states.end(), [](const ipc::state& s) {
                return s.link != ipc::link_state::connected && s.reason.starts_with("provisioning: ");
            });
        },
        10'000))
        << "apps are not told the Thing is being provisioned; log:\n" << read_file(daemon.log_file());
    EXPECT_EQ(property(bus, "IdentityState"), "s \"provisioning\"\n");
    const auto expected = publish_all(app, "dt/gateway-01/early", numbered(25, "early-"), ipc::errc::spooled);
    EXPECT_FALSE(fs::exists(files.cert));
    EXPECT_FALSE(fs::exists(files.key));

    broker.start();
    ASSERT_TRUE(app.wait_state(ipc::link_state::connected, 30'000)) << read_file(daemon.log_file());
    EXPECT_EQ(cloud.wait_for_all(expected, 20'000), 0U) << "publishes made while provisioning were lost";
    EXPECT_FALSE(app.closed());

    const auto id = expect_one_matching_pair(broker, files);
    EXPECT_EQ(responder.requests(kind::create_certificate), 1U);
    EXPECT_EQ(responder.accepted(kind::create_certificate), 1U);
    EXPECT_EQ(responder.requests(kind::register_thing), 1U);
    EXPECT_EQ(responder.accepted(kind::register_thing), 1U);
    EXPECT_EQ(issued_ids(responder), std::vector<std::string>{id});
    EXPECT_EQ(property(bus, "IdentityState"), "s \"installed\"\n");
    EXPECT_EQ(property(bus, "CertificateId"), "s \"" + id + "\"\n");
    EXPECT_EQ(property(bus, "IdentityError"), "s \"\"\n");
    const auto status = ctl_status(bus.address(), daemon);
    EXPECT_NE(status.find("certificate:"), std::string::npos) << status;
    EXPECT_NE(status.find("certificate:       " + id.substr(0, 8) + "\u2026" + id.substr(56)), std::string::npos) << status;

    expect_round_trip(broker, daemon, 10, 1, "after-provisioning");
    // The Thing's session is its own certificate's: the claim connection is gone, one
    // connection as gateway-01 remains.
    EXPECT_TRUE(log_has(daemon, "provisioned: certificate " + id)) << read_file(daemon.log_file());
}

// ---- 2 -------------------------------------------------------------------------------------------

struct kill_case {
    const char* step;
    fleet_responder_fixture::faults faults;  // injected before the daemon starts: the restarted responder has none
};

// SIGKILL while the daemon waits for an answer: (a) the key generated and its CSR sent, no answer;
// (b) the certificate issued, RegisterThing sent, the responder gone. Restarted (responder too),
// the daemon finishes with one certificate and its key, nothing pending, and a working session.
TEST(IdentityTest, KilledMidProvisioningAndRestartedEndsWithOneCertificateAndItsKey) {
    for (const auto& c : {kill_case{"create sent, unanswered", {.silent_create = 1}},
                          kill_case{"create accepted, register unanswered", {.exit_after = 1}}}) {
        SCOPED_TRACE(c.step);
        broker_fixture broker;
        fleet_responder_fixture responder(broker);
        responder.inject(c.faults);
        // The requests as they reach the broker, whoever answers them.
        observer_subscription requests(broker, "$aws/#", "request-observer");
        ASSERT_TRUE(requests.wait_ready());
        const auto files = identity_dir(broker);
        daemon_fixture daemon(broker, identity_setup(provisioning_yaml(broker, files)));

        const auto sent = [&](const std::string& topic) {
            const auto lines = requests.lines();
            return std::any_of(lines.begin(), lines.end(), [&](const std::string& l) { return l.starts_with(topic + " "); });
        };
        if (c.faults.exit_after != 0) {
            ASSERT_TRUE(eventually([&] { return sent(fleet_responder_fixture::provision_topic("thingmux-fleet")); }, 15'000))
                << read_file(daemon.log_file());
            ASSERT_TRUE(responder.wait_exited(10'000));
            EXPECT_EQ(responder.accepted(kind::create_certificate), 1U);
        } else {
            ASSERT_EQ(responder.wait_for_records(1, 15'000), 1U) << read_file(daemon.log_file());
            EXPECT_EQ(responder.records().at(0).outcome, "silent");
        }
        // The key for the CSR in flight is on disk (KEY.pending), the pair is not.
        const auto pending_key = thingmux::identity::pending_path(files.key);
        EXPECT_TRUE(fs::exists(pending_key));
        daemon.kill();
        const auto key_at_kill = read_file(pending_key);
        EXPECT_FALSE(fs::exists(files.cert));
        EXPECT_FALSE(fs::exists(files.key));

        responder.start();
        daemon.start();
        ipc_client app(daemon.socket_path());
        ASSERT_TRUE(hello_connected(app, "after-restart")) << read_file(daemon.log_file());
        const auto id = expect_one_matching_pair(broker, files);
        // The restarted daemon reused the key it had already generated.
        EXPECT_EQ(read_file(files.key), key_at_kill);
        const auto issued = issued_ids(responder);
        ASSERT_FALSE(issued.empty());
        EXPECT_EQ(issued.back(), id);
        EXPECT_EQ(issued.size(), 1U + (c.faults.exit_after != 0 ? 1U : 0U));
        EXPECT_EQ(responder.requests(kind::create_certificate), 2U);
        // The Thing was registered with the certificate it holds. In (b) the killed daemon's
        // RegisterThing may still reach the restarted responder (its session is persistent) and
        // register the first certificate too, as AWS IoT would have when it got the request.
        std::vector<std::string> registered;
        for (const auto& r : responder.records())
            if (r.what == kind::register_thing && r.outcome == "accepted") registered.push_back(r.certificate_id);
        ASSERT_FALSE(registered.empty());
        EXPECT_EQ(registered.back(), id);
        EXPECT_LE(registered.size(), c.faults.exit_after != 0 ? 2U : 1U);
        expect_round_trip(broker, daemon, 10, 1, "after-kill");
    }
}

// ---- 3 -------------------------------------------------------------------------------------------

// A transient refusal (500 InternalFailure) of CreateCertificateFromCsr: the daemon tries again
// after its first back-off step (5 s), not sooner and not twice that, and then completes.
TEST(IdentityTest, TransientProvisioningFailureIsRetriedAfterTheFirstBackOffStep) {
    broker_fixture broker;
    fleet_responder_fixture responder(broker);
    responder.inject({.fail_create = 1});
    const auto files = identity_dir(broker);
    daemon_fixture daemon(broker, identity_setup(provisioning_yaml(broker, files, "  timeout: 2s\n")));
    ipc_client app(daemon.socket_path());
    ASSERT_TRUE(hello_connected(app, "patient-app")) << read_file(daemon.log_file());
    expect_one_matching_pair(broker, files);

    const auto records = responder.records();
    ASSERT_EQ(records.size(), 3U);
    EXPECT_EQ(records[0].status, 500);
    EXPECT_EQ(records[1].outcome, "accepted");
    EXPECT_EQ(records[2].what, kind::register_thing);
    const double gap = records[1].time - records[0].time;
    EXPECT_GE(gap, 4.5) << "retried before its back-off";
    EXPECT_LT(gap, 8.0) << "the first retry waited more than the first back-off step";
    EXPECT_TRUE(log_has(daemon, "provisioning failed")) << read_file(daemon.log_file());
    expect_round_trip(broker, daemon, 5, 1, "after-retry");
}

// RegisterThing refused (the template's pre-provisioning hook says no to the ThingName): nothing
// is written, the daemon keeps running and says why (log, D-Bus, thingmuxctl, apps' state).
TEST(IdentityTest, RefusedProvisioningWritesNothingAndShowsAwsErrorCode) {
    broker_fixture broker;
    fleet_responder_fixture responder(broker, refusing_this_thing());
    dbus_fixture bus;
    const auto files = identity_dir(broker);
    daemon_fixture daemon(broker, identity_setup(provisioning_yaml(broker, files, "  timeout: 2s\n"), &bus));
    ipc_client app(daemon.socket_path());
    app.hello("waiting-app");

    expect_logged(daemon, "provisioning failed");
    ASSERT_TRUE(eventually(
        [&] {
            app.drain();
            return std::any_of(app.states.begin(), app.states.end(), [](const ipc::state& s) {
                return s.reason.starts_with("provisioning failed") && s.reason.find("AccessDenied") != std::string::npos;
            });
        },
        10'000))
        << "apps are not told why; log:\n" << read_file(daemon.log_file());
    EXPECT_EQ(app.states.back().link, ipc::link_state::failed);
    EXPECT_TRUE(app.states.back().fatal);
    EXPECT_EQ(responder.rejected(kind::register_thing), 1U);
    EXPECT_EQ(responder.accepted(kind::create_certificate), 1U);

    EXPECT_FALSE(fs::exists(files.cert));
    EXPECT_FALSE(fs::exists(files.key));
    const auto text = read_file(daemon.log_file());
    const auto line = text.substr(text.find("provisioning failed"));
    EXPECT_NE(line.substr(0, line.find('\n')).find("AccessDenied"), std::string::npos) << text;
    EXPECT_NE(property(bus, "IdentityError").find("AccessDenied"), std::string::npos);
    const auto status = ctl_status(bus.address(), daemon);
    EXPECT_NE(status.find("AccessDenied"), std::string::npos) << status;

    // Still serving: the app is connected to thingmuxd and can ping it; a new one can connect.
    EXPECT_TRUE(app.ping(7));
    EXPECT_FALSE(app.closed());
    ipc_client other(daemon.socket_path());
    other.hello("second-app");
    EXPECT_TRUE(other.ping(8));
    // AWS refused: no retry within the test (the next attempt is half an hour away).
    EXPECT_EQ(responder.requests(kind::register_thing), 1U);
}

// A rotation AWS IoT refuses, at RegisterThing (403, D-Bus) and at CreateCertificateFromCsr
// (500, thingmuxctl): the pair stays byte for byte, the Thing stays connected, the caller gets
// the error.
TEST(IdentityTest, RejectedRotationKeepsThePairAndReportsTheError) {
    broker_fixture broker;
    fleet_responder_fixture responder(broker, refusing_this_thing());
    dbus_fixture bus;
    const auto files = identity_dir(broker);
    daemon_fixture daemon(broker, identity_setup(rotation_yaml(broker, files, "thingmux-fleet"), &bus));
    ipc_client app(daemon.socket_path());
    ASSERT_TRUE(hello_connected(app, "steady-app"));
    const auto cert_before = read_file(files.cert);
    const auto key_before = read_file(files.key);
    const auto connections = broker_connections(broker, thing_name);

    const auto refused = rotate_over_dbus(bus);
    EXPECT_NE(refused.exit_code, 0) << refused.output;
    EXPECT_NE(refused.output.find("AccessDenied"), std::string::npos) << refused.output;
    EXPECT_EQ(responder.rejected(kind::register_thing), 1U);
    EXPECT_NE(property(bus, "IdentityError").find("AccessDenied"), std::string::npos);
    // The D-Bus error's name, as a program sees it.
    const auto typed = bus.dbus_send({"--print-reply", "--reply-timeout=60000", "--dest=org.thingmux.Thingmux1",
                                      "/org/thingmux/Thingmux1/thing/gateway_2d01",
                                      "org.thingmux.Thingmux1.Thing.RotateCertificate"});
    EXPECT_NE(typed.output.find("org.thingmux.Thingmux1.Error.RotationFailed"), std::string::npos) << typed.output;

    responder.inject({.fail_create = 1});
    ::setenv("DBUS_SYSTEM_BUS_ADDRESS", bus.address().c_str(), 1);
    std::string out;
    const int rc = run_command({std::string(THINGMUX_BIN_DIR) + "/thingmuxctl", "--socket", daemon.socket_path().string(),
                                "--thing", thing_name, "rotate-certificate", "-W", "30"},
                               &out);
    ::unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
    EXPECT_EQ(rc, 1) << out;
    EXPECT_NE(out.find("InternalFailure"), std::string::npos) << out;
    EXPECT_EQ(responder.rejected(kind::create_certificate), 1U);

    EXPECT_EQ(read_file(files.cert), cert_before);
    EXPECT_EQ(read_file(files.key), key_before);
    EXPECT_FALSE(fs::exists(thingmux::identity::pending_path(files.cert)));
    EXPECT_EQ(property(bus, "IdentityState"), "s \"installed\"\n");
    EXPECT_FALSE(app.closed());
    EXPECT_TRUE(app.ping(3));
    expect_round_trip(broker, daemon, 5, 1, "after-rejection");
    EXPECT_EQ(broker_connections(broker, thing_name), connections) << "a failed rotation reconnected";
}

// An automatic rotation (the certificate has less than before_expiry left) that AWS IoT refuses
// is tried again after the back-off, not at once: one refusal, then silence for a while, the
// pair unchanged. The expiry warning is logged once.
TEST(IdentityTest, RefusedAutomaticRotationWaitsBeforeTryingAgain) {
    broker_fixture broker;
    fleet_responder_fixture responder(broker, refusing_this_thing());
    const auto files = identity_dir(broker);
    const auto setup = identity_setup(rotation_yaml(broker, files, "thingmux-fleet", "  before_expiry: 60d\n"));
    // 20 days left: due, and past the 30-day warning.
    short_lived_pair(broker, files, 20);
    const auto cert_before = read_file(files.cert);
    const auto key_before = read_file(files.key);
    daemon_fixture daemon(broker, setup);

    ASSERT_TRUE(eventually([&] { return responder.rejected(kind::register_thing) >= 1; }, 20'000))
        << "the due rotation did not start; log:\n" << read_file(daemon.log_file());
    // An observation window: a retry without back-off would come within milliseconds.
    EXPECT_FALSE(eventually([&] { return responder.requests(kind::create_certificate) > 1; }, 3'000))
        << responder.requests(kind::create_certificate) << " CreateCertificateFromCsr requests in a row; log:\n"
        << read_file(daemon.log_file());
    EXPECT_EQ(read_file(files.cert), cert_before);
    EXPECT_EQ(read_file(files.key), key_before);
    EXPECT_EQ(log_lines(daemon, "days left); rotation is configured"), 1U) << read_file(daemon.log_file());
    expect_round_trip(broker, daemon, 5, 1, "while-rotation-waits");
}

// ---- 4 -------------------------------------------------------------------------------------------

// Ten apps publish numbered QoS 1 messages without pause while the certificate is rotated over
// D-Bus: every accepted message reaches the cloud, the pair is new and matches, the id
// RotateCertificate returned is the one the responder issued and the one in the file, the
// broker saw the Thing connect again, and no app lost its connection to thingmuxd.
TEST(IdentityTest, RotationUnderLoadOfTenAppsLosesNoMessageAndInstallsTheNewPair) {
    identity_scene scene;
    auto& [broker, responder, bus, cloud] = scene;
    ASSERT_TRUE(cloud.wait_ready());
    const auto files = identity_dir(broker);
    daemon_fixture daemon(broker, identity_setup(rotation_yaml(broker, files, "thingmux-fleet"), &bus));
    const auto cert_before = read_file(files.cert);
    const auto key_before = read_file(files.key);

    constexpr std::size_t apps = 10;
    std::atomic<bool> rotated{false};
    std::atomic<std::size_t> after_rotation_done{0};
    std::atomic<std::size_t> ready{0};
    std::vector<std::vector<std::string>> accepted(apps);
    std::vector<std::string> failures(apps);
    std::vector<char> disconnected(apps, 0);
    // Declared last: destroyed (stop requested, joined) before what the threads use.
    std::vector<std::jthread> threads;
    for (std::size_t i = 0; i < apps; ++i) {
        threads.emplace_back([&, i](const std::stop_token& stop) {
            ipc_client c(daemon.socket_path());
            if (!hello_connected(c, "loader-" + std::to_string(i))) {
                failures[i] = "not connected at start";
                ready++;
                after_rotation_done++;
                return;
            }
            ready++;
            const std::string topic = "dt/gateway-01/app" + std::to_string(i);
            int after = 0;
            // Each app goes on until it has had 30 publishes accepted after the rotation (bounded:
            // at most 5000 in all).
            for (int n = 1; n <= 5000 && after < 30 && !stop.stop_requested(); ++n) {
                const bool was_rotated = rotated.load();
                const auto payload = std::to_string(n);
                const auto r = c.publish(topic, payload, 1);
                if (!ipc::accepted(r.code)) {
                    failures[i] = payload + ": " + r.message;
                    break;
                }
                accepted[i].push_back(topic + " " + payload);
                if (was_rotated) ++after;
            }
            disconnected[i] = c.closed() ? 1 : 0;
            after_rotation_done++;
        });
    }
    ASSERT_TRUE(eventually([&] { return ready.load() == apps; }, 20'000));
    // Some traffic before the rotation starts.
    ASSERT_TRUE(eventually([&] { return cloud.lines().size() >= 50; }, 20'000));
    const auto connections = broker_connections(broker, thing_name);

    const auto r = rotate_over_dbus(bus);
    rotated = true;
    EXPECT_EQ(r.exit_code, 0) << r.output << read_file(daemon.log_file());
    EXPECT_TRUE(eventually([&] { return after_rotation_done.load() == apps; }, 60'000)) << "the apps got stuck";
    for (auto& t : threads) {
        t.request_stop();
        t.join();
    }

    std::vector<std::string> expected;
    for (std::size_t i = 0; i < apps; ++i) {
        EXPECT_EQ(failures[i], "") << "app " << i;
        EXPECT_EQ(disconnected[i], 0) << "app " << i << " lost its connection to thingmuxd";
        EXPECT_GE(accepted[i].size(), 30U) << "app " << i;
        expected.insert(expected.end(), accepted[i].begin(), accepted[i].end());
    }
    EXPECT_EQ(cloud.wait_for_all(expected, 30'000), 0U) << "accepted messages lost across the rotation";

    const auto id = expect_one_matching_pair(broker, files);
    EXPECT_NE(read_file(files.cert), cert_before);
    EXPECT_NE(read_file(files.key), key_before);
    EXPECT_EQ(r.output, "s \"" + id + "\"\n");
    EXPECT_EQ(issued_ids(responder), std::vector<std::string>{id});
    EXPECT_EQ(responder.accepted(kind::register_thing), 1U);
    EXPECT_EQ(property(bus, "CertificateId"), "s \"" + id + "\"\n");
    EXPECT_TRUE(eventually([&] { return broker_connections(broker, thing_name) > connections; }, 10'000))
        << "the broker saw no new connection with the new certificate";
    expect_round_trip(broker, daemon, 5, 1, "after-rotation");

    // The broker really takes the new certificate: with the old one revoked, the restarted broker
    // refuses the old pair, and the daemon connects again.
    broker.revoke(broker.thing(thing_name).cert);
    broker.restart();
    auto old_pair = broker.client_args(broker.thing(thing_name), "old-certificate");
    old_pair.insert(old_pair.begin(), "mosquitto_pub");
    for (const auto* a : {"-t", "dt/gateway-01/old", "-m", "revoked", "-q", "1"}) old_pair.emplace_back(a);
    std::string out;
    EXPECT_NE(run_command(old_pair, &out, 20'000), 0) << "the broker still accepts the old certificate: " << out;
    ipc_client late(daemon.socket_path());
    EXPECT_TRUE(hello_connected(late, "after-revocation")) << read_file(daemon.log_file());
    expect_round_trip(broker, daemon, 5, 1, "after-revocation");
}

// ---- 3 -------------------------------------------------------------------------------------------

// Whether any file under `dir` holds a software private key in PEM (PKCS#8 or SEC 1).
std::optional<fs::path> file_with_software_key(const fs::path& dir) {
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
        if (!e.is_regular_file()) continue;
        const auto text = read_file(e.path());
        if (text.find("BEGIN PRIVATE KEY") != std::string::npos || text.find("BEGIN EC PRIVATE KEY") != std::string::npos)
            return e.path();
    }
    return std::nullopt;
}

// key_type: tpm2-ec-p256: provisioning by claim generates the Thing's key inside the (software)
// TPM, the CSR is signed there, `key:` holds its TSS2 PEM and the session signs with it; a
// rotation with the same key type installs a new TPM key that works too. No software private key
// of the Thing is ever written.
TEST(IdentityTest, TpmKeyTypeProvisionsAndRotatesWithKeysMadeInTheTpm) {
    if (!have_software_tpm()) return;
    identity_scene scene;
    auto& [broker, responder, bus, cloud] = scene;
    ASSERT_TRUE(cloud.wait_ready());
    software_tpm tpm(broker.dir() / "tpm-state");
    const auto files = identity_dir(broker);
    auto setup = identity_setup(provisioning_yaml(broker, files, "  key_type: tpm2-ec-p256\n") +
                                    "\nrotation:\n  template: thingmux-fleet\n  parameters: {ThingName: \"${thing}\"}\n"
                                    "  key_type: tpm2-ec-p256\n  timeout: 5s",
                                &bus);
    setup.top = "tpm2_tcti: \"" + tpm.tcti() + "\"";  // the daemon's environment has no TPM2OPENSSL_TCTI
    daemon_fixture daemon(broker, setup);

    ipc_client app(daemon.socket_path());
    (void)app.hello("tpm-app");
    ASSERT_TRUE(app.wait_state(ipc::link_state::connected, 30'000)) << read_file(daemon.log_file());
    const auto id = expect_one_matching_pair(broker, files, tpm.tcti());
    const auto key = read_file(files.key);
    EXPECT_TRUE(key.starts_with("-----BEGIN TSS2 PRIVATE KEY-----")) << key;
    EXPECT_EQ(issued_ids(responder), std::vector<std::string>{id});
    EXPECT_EQ(responder.accepted(kind::register_thing), 1U);
    expect_round_trip(broker, daemon, 5, 1, "after-tpm-provisioning");

    const auto connections = broker_connections(broker, thing_name);
    const auto r = rotate_over_dbus(bus);
    ASSERT_EQ(r.exit_code, 0) << r.output << read_file(daemon.log_file());
    const auto rotated_id = expect_one_matching_pair(broker, files, tpm.tcti());
    EXPECT_EQ(r.output, "s \"" + rotated_id + "\"\n");
    EXPECT_NE(rotated_id, id);
    const auto rotated_key = read_file(files.key);
    EXPECT_TRUE(rotated_key.starts_with("-----BEGIN TSS2 PRIVATE KEY-----")) << rotated_key;
    EXPECT_NE(rotated_key, key) << "the rotation kept the TPM key";
    EXPECT_EQ(issued_ids(responder), (std::vector<std::string>{id, rotated_id}));
    EXPECT_TRUE(eventually([&] { return broker_connections(broker, thing_name) > connections; }, 10'000))
        << "the broker saw no new connection with the new certificate";
    expect_round_trip(broker, daemon, 5, 1, "after-tpm-rotation");

    const auto software_key = file_with_software_key(daemon.dir());
    EXPECT_FALSE(software_key.has_value()) << "a software private key was written: " << *software_key;
}

// What a power cut leaves of a TPM key's commit is finished at start as for a PEM key: the
// pending TSS2 key is loaded into the TPM to see that the pending certificate is its own, and a
// certificate for another key is not installed with it.
TEST(IdentityTest, InterruptedCommitOfATpmKeyIsFinishedAndAForeignCertificateDiscarded) {
    if (!have_software_tpm()) return;
    broker_fixture broker;
    software_tpm tpm(broker.dir() / "tpm-state");
    const auto files = identity_dir(broker);
    const thingmux::identity::identity_paths paths{files.cert, files.key, tpm.tcti()};
    // A certificate of the test CA for `key` (TSS2 or PEM), as CERT.pending.
    const auto pending_certificate_for = [&](std::string_view key, const std::string& name) {
        const auto csr = thingmux::identity::make_csr(key, thing_name, tpm.tcti());
        ASSERT_TRUE(csr.has_value()) << csr.error().message;
        const auto csr_file = broker.dir() / (name + ".csr");
        std::ofstream(csr_file) << *csr;
        broker.sign_csr(csr_file, thingmux::identity::pending_path(files.cert));
    };

    const auto key = thingmux::identity::generate_key(thingmux::identity::key_type::tpm2_ec_p256, tpm.tcti());
    ASSERT_TRUE(key.has_value()) << key.error().message;
    ASSERT_TRUE(thingmux::identity::write_pending_key(paths, *key).has_value());
    const auto reread = thingmux::identity::read_pending_key(paths);
    ASSERT_TRUE(reread.has_value() && reread->has_value()) << "the pending TSS2 key is not taken for the next attempt";
    pending_certificate_for(key->view(), "tpm");
    const auto finished = thingmux::identity::recover(paths);
    ASSERT_TRUE(finished.has_value()) << finished.error().message;
    EXPECT_EQ(finished->action, thingmux::identity::recovery::completed) << finished->detail;
    EXPECT_EQ(read_file(files.key), key->view());
    const auto matches = thingmux::identity::key_matches_certificate(read_file(files.key), read_file(files.cert), tpm.tcti());
    EXPECT_TRUE(matches.has_value() && *matches);

    // A later attempt's TPM key, and a certificate for some other (software) key: not installed.
    const auto next = thingmux::identity::generate_key(thingmux::identity::key_type::tpm2_ec_p256, tpm.tcti());
    ASSERT_TRUE(next.has_value()) << next.error().message;
    EXPECT_NE(next->view(), key->view());
    ASSERT_TRUE(thingmux::identity::write_pending_key(paths, *next).has_value());
    const auto foreign = thingmux::identity::generate_key(thingmux::identity::key_type::ec_p256);
    ASSERT_TRUE(foreign.has_value());
    pending_certificate_for(foreign->view(), "foreign");
    const auto cert_before = read_file(files.cert);
    const auto discarded = thingmux::identity::recover(paths);
    ASSERT_TRUE(discarded.has_value()) << discarded.error().message;
    EXPECT_EQ(discarded->action, thingmux::identity::recovery::discarded_certificate) << discarded->detail;
    EXPECT_TRUE(discarded->pending_key_kept);
    EXPECT_EQ(read_file(files.cert), cert_before);
    EXPECT_EQ(read_file(files.key), key->view());
    EXPECT_FALSE(thingmux::identity::commit(paths, read_file(files.cert)).has_value())
        << "the old certificate was committed with the new TPM key";
}

}  // namespace
}  // namespace thingmux::test
