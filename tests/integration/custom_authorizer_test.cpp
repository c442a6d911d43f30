// thingmuxd with an AWS IoT custom authorizer (docs/connecting.md, "Custom authorizer"): the real
// daemon and the real mosquitto, whose TLS login listener holds exactly the user name and
// password thingmuxd must send (a password file made by mosquitto_passwd at test time). A
// connection that succeeds proves the broker received them byte for byte; the broker's log
// shows the user name it read. A wrong token is refused: the denial is reported once per
// attempt, and what apps published meanwhile arrives once the token file is fixed.
#include "tests/support/daemon_fixture.hpp"
#include "tests/support/dbus_fixture.hpp"
#include "tests/support/round_trip.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

namespace thingmux::test {
namespace {

// What the authorizer's Lambda would accept, as the broker must receive it: the signature's '+',
// '/' and '=' percent-encoded in the user name.
const std::string token = "tok-3f9a.1";
const std::string signature = "c2ln+bi8/dA==";
const std::string password = "authz-pass word";
const std::string signed_user_name =
    "gateway-01?x-amz-customauthorizer-name=fleet-authorizer&token=tok-3f9a.1"
    "&x-amz-customauthorizer-signature=c2ln%2Bbi8%2FdA%3D%3D";
// An authorizer with signing disabled, no user name before '?'.
const std::string unsigned_user_name = "?x-amz-customauthorizer-name=open_authorizer&device-token=tok-3f9a.1";

broker_fixture::options login_broker(const std::string& user_name, bool requires_certificate) {
    broker_fixture::options o;
    o.logins = {{.username = user_name, .password = password, .thing = "gateway-01"}};
    o.login_requires_certificate = requires_certificate;
    return o;
}

// The broker's log line for the daemon's CONNECT, with the user name it read.
bool broker_read_user_name(const broker_fixture& broker, const std::string& user_name) {
    return read_file(broker.log_file()).find(" as gateway-01 (p") != std::string::npos &&
           read_file(broker.log_file()).find("u'" + user_name + "')") != std::string::npos;
}

// No secret reaches the daemon's log.
void expect_no_secret_in(const std::string& text) {
    EXPECT_EQ(text.find(token), std::string::npos) << "the token was logged";
    EXPECT_EQ(text.find("c2ln"), std::string::npos) << "the signature was logged";
    EXPECT_EQ(text.find(password), std::string::npos) << "the password was logged";
}

TEST(CustomAuthorizerTest, SignedTokenWithClientCertificateCarriesTrafficBothWays) {
    broker_fixture broker(login_broker(signed_user_name, true));
    dbus_fixture bus;
    daemon_setup setup;
    setup.port = broker.login_port();
    setup.bus = bus.address();
    setup.thing =
        "auth: custom-authorizer\ncustom_authorizer:\n  name: fleet-authorizer\n  token_key_name: token\n"
        "  token: " +
        secret_file(broker.dir(), "token", token + "\n").string() +
        "\n  signature: " + secret_file(broker.dir(), "signature", signature + "\n").string() +
        "\n  username: gateway-01\n  password: " + secret_file(broker.dir(), "password", password).string();
    daemon_fixture daemon(broker, setup);
    expect_round_trip(broker, daemon, 20, 1, "custom-authorizer");
    EXPECT_TRUE(broker_read_user_name(broker, signed_user_name)) << read_file(broker.log_file());
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 1U);

    // D-Bus and thingmuxctl status show the way, never a secret.
    const auto r = bus.thing_property("Auth");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(r.output, "s \"custom-authorizer fleet-authorizer\"\n");
    const auto out = ctl_status(bus.address(), daemon);
    EXPECT_NE(out.find("\nauth:              custom-authorizer fleet-authorizer\n"), std::string::npos) << out;
    expect_no_secret_in(out);
    expect_no_secret_in(read_file(daemon.log_file()));
}

TEST(CustomAuthorizerTest, UnsignedTokenWithoutClientCertificateOverMqtt311) {
    broker_fixture broker(login_broker(unsigned_user_name, false));
    daemon_setup setup;
    setup.port = broker.login_port();
    setup.protocol = "mqtt311";
    setup.client_certificate = false;
    setup.thing =
        "auth: custom-authorizer\ncustom_authorizer:\n  name: open_authorizer\n  token_key_name: device-token\n"
        "  token: " +
        secret_file(broker.dir(), "token", token + "\r\n").string() +
        "\n  password: " + secret_file(broker.dir(), "password", password + "\n").string();
    daemon_fixture daemon(broker, setup);
    expect_round_trip(broker, daemon, 10, 1, "custom-authorizer");
    EXPECT_TRUE(broker_read_user_name(broker, unsigned_user_name)) << read_file(broker.log_file());
    EXPECT_NE(read_file(broker.log_file()).find("(p2,"), std::string::npos) << "MQTT 3.1.1";
    expect_no_secret_in(read_file(daemon.log_file()));
}

// A wrong token: the broker refuses (as AWS IoT Core does when the authorizer's Lambda denies),
// the daemon says which authorizer and which files, once per attempt, and keeps trying with its
// back-off; the token file is read at every attempt, so fixing it is enough. Publishes accepted
// meanwhile (spooled) all arrive.
TEST(CustomAuthorizerTest, WrongTokenIsDeniedOncePerAttemptAndNothingPublishedIsLost) {
    for (const std::string protocol : {"mqtt5", "mqtt311"}) {
        SCOPED_TRACE(protocol);
        broker_fixture broker(login_broker(unsigned_user_name, false));
        const auto token_file = secret_file(broker.dir(), "token", "tok-expired\n");
        daemon_setup setup;
        setup.port = broker.login_port();
        setup.protocol = protocol;
        setup.client_certificate = false;
        setup.thing =
            "auth: custom-authorizer\ncustom_authorizer:\n  name: open_authorizer\n  token_key_name: device-token\n"
            "  token: " +
            token_file.string() + "\n  password: " + secret_file(broker.dir(), "password", password).string() +
            "\nbackoff: { base: 100ms, cap: 300ms }";
        daemon_fixture daemon(broker, setup);
        const std::string denied = "custom authorizer open_authorizer denied the connection (broker: ";
        ASSERT_TRUE(eventually([&] { return log_lines(daemon, denied) >= 3; }, 30'000)) << read_file(daemon.log_file());
        const auto text = read_file(daemon.log_file());
        EXPECT_NE(text.find("check the token and signature files (custom_authorizer.token " + token_file.string()),
                  std::string::npos)
            << text;
        EXPECT_NE(text.find("(needs a configuration change)"), std::string::npos) << text;
        EXPECT_EQ(text.find("tok-expired"), std::string::npos) << "the token was logged";

        // Apps publish meanwhile: accepted into the spool.
        observer_subscription cloud(broker, "dt/gateway-01/#");
        ASSERT_TRUE(cloud.wait_ready());
        ipc_client app(daemon.socket_path());
        app.hello("while-denied");
        const auto expected = publish_all(app, "dt/gateway-01/x", numbered(10, "denied-"), ipc::errc::spooled);
        // Once per attempt: as many denials as attempts ended (one more may be under way).
        const auto attempts = log_lines(daemon, "connecting to localhost:" + std::to_string(broker.login_port()));
        const auto reported = log_lines(daemon, denied);
        EXPECT_TRUE(attempts == reported || attempts == reported + 1)
            << attempts << " attempts, " << reported << " reported";
        EXPECT_EQ(broker_connections(broker, "gateway-01"), 0U);

        // The fixed token is read at the next attempt: no reload, no restart.
        (void)secret_file(broker.dir(), "token", token + "\n");
        EXPECT_EQ(cloud.wait_for_all(expected, 30'000), 0U) << "spooled messages lost" << read_file(daemon.log_file());
        EXPECT_EQ(broker_connections(broker, "gateway-01"), 1U);
        EXPECT_TRUE(broker_read_user_name(broker, unsigned_user_name)) << read_file(broker.log_file());
        expect_no_secret_in(read_file(daemon.log_file()));
    }
}

// thingmux-probe checks a device's custom authorizer settings the same way, without a certificate.
TEST(CustomAuthorizerTest, ProbeLogsInThroughTheAuthorizer) {
    broker_fixture broker(login_broker(unsigned_user_name, false));
    const std::vector<std::string> probe{std::string(THINGMUX_BIN_DIR) + "/thingmux-probe",
                                         "--host",
                                         broker.host(),
                                         "--port",
                                         std::to_string(broker.login_port()),
                                         "--thing",
                                         "gateway-01",
                                         "--ca",
                                         broker.ca_file().string(),
                                         "--authorizer",
                                         "open_authorizer",
                                         "--token-key-name",
                                         "device-token",
                                         "--token",
                                         secret_file(broker.dir(), "token", token + "\n").string(),
                                         "--password",
                                         secret_file(broker.dir(), "password", password).string(),
                                         "--count",
                                         "5",
                                         "--timeout",
                                         "20"};
    std::string out;
    EXPECT_EQ(run_command(probe, &out, 30'000), 0) << out;
    EXPECT_TRUE(broker_read_user_name(broker, unsigned_user_name)) << read_file(broker.log_file());
    expect_no_secret_in(out);

    // Without --authorizer the certificate stays required.
    auto no_certificate = probe;
    const auto option = std::find(no_certificate.begin(), no_certificate.end(), "--authorizer");
    ASSERT_NE(option, no_certificate.end());
    no_certificate.erase(option, option + 2);  // --authorizer NAME
    EXPECT_EQ(run_command(no_certificate, &out, 30'000), 2) << out;
    EXPECT_NE(out.find("--cert and --key are required"), std::string::npos) << out;
}

}  // namespace
}  // namespace thingmux::test
