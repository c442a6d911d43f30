// thingmuxd authenticating over MQTT over WebSocket (docs/connecting.md): a SigV4-presigned URL
// from a credentials file, from the AWS IoT credentials provider (renewed credentials, a new
// signature and a new connection), no credentials at all, and a custom authorizer's upgrade
// headers. The real daemon, the real AWS-like mosquitto behind wss_relay (which records every
// upgrade request), the test credentials provider, and Debian's botocore as an independent check
// of every recorded signature.
#include "tests/support/credentials_provider_fixture.hpp"
#include "tests/support/daemon_fixture.hpp"
#include "tests/support/dbus_fixture.hpp"
#include "tests/support/round_trip.hpp"
#include "tests/support/wss_front.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace thingmux::test {
namespace {

namespace fs = std::filesystem;

std::string ctl() {
    return std::string(THINGMUX_BIN_DIR) + "/thingmuxctl";
}

// Made-up credentials in the form AWS uses (the documentation's example key id).
const std::string key_id = "AKIAIOSFODNN7EXAMPLE";
const std::string secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
// Holds '+', '/' and '=' that the URL must percent-encode.
const std::string session_token = "IQoJb3JpZ2luX2VjEPT//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+t0k3n/eXAMPLE==";
const std::string scope_suffix = "%2Fus-east-1%2Fiotdevicegateway%2Faws4_request";

// One upgrade request as wss_relay recorded it.
struct upgrade {
    std::string target;
    std::map<std::string, std::string> headers;
    bool client_cert = false;

    [[nodiscard]] std::string header(const std::string& name) const {
        const auto it = headers.find(name);
        return it == headers.end() ? std::string{} : it->second;
    }
    // The value of query parameter `name` (as sent, still percent-encoded); nullopt when absent.
    [[nodiscard]] std::optional<std::string> parameter(const std::string& name) const {
        const auto q = target.find('?');
        if (q == std::string::npos) return std::nullopt;
        std::size_t pos = q + 1;
        while (pos <= target.size()) {
            auto end = target.find('&', pos);
            if (end == std::string::npos) end = target.size();
            const auto p = target.substr(pos, end - pos);
            if (p.starts_with(name + "=")) return p.substr(name.size() + 1);
            pos = end + 1;
        }
        return std::nullopt;
    }
};

std::vector<upgrade> upgrades_of(const wss_front& front) {
    std::vector<upgrade> out;
    for (const auto& line : front.upgrades()) {
        const auto v = boost::json::parse(line);
        upgrade u;
        u.target = std::string(v.at("target").as_string());
        for (const auto& [name, value] : v.at("headers").as_object())
            u.headers[std::string(name)] = std::string(value.as_string());
        u.client_cert = v.at("client_cert").as_bool();
        out.push_back(std::move(u));
    }
    return out;
}

// RFC 3986 unreserved characters stay, everything else is %XX (as SigV4 and botocore encode).
std::string uri_encoded(const std::string& s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (std::isalnum(c) != 0 || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            out += ch;
        } else {
            out += '%';
            out += hex[c >> 4U];
            out += hex[c & 0xFU];
        }
    }
    return out;
}

// What botocore's SigV4QueryAuth presigns for GET https://HOST/mqtt with the recorded request's
// X-Amz-Date and X-Amz-Expires, for the recorded host header, in us-east-1 for
// iotdevicegateway, with `id`/`key` (no token: AWS IoT Core wants it unsigned, appended).
std::string botocore_target(const upgrade& u, const std::string& id, const std::string& key) {
    const auto date = u.parameter("X-Amz-Date");
    const auto expires = u.parameter("X-Amz-Expires");
    if (!date || !expires) return "(no X-Amz-Date or X-Amz-Expires in " + u.target + ")";
    std::string out;
    const int rc = run_command({"/usr/bin/python3", BOTOCORE_PRESIGN, u.header("host"), "us-east-1", "iotdevicegateway",
                                *expires, *date, id, key},
                               &out, 30'000);
    EXPECT_EQ(rc, 0) << out;
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
}

// The recorded request is the presigned AWS IoT WebSocket URL for `id` (and `token` appended
// last when not empty), and botocore computes the same signature from the same inputs.
void expect_presigned(const upgrade& u, const std::string& id, const std::string& key, const std::string& token) {
    SCOPED_TRACE(u.target);
    EXPECT_TRUE(u.target.starts_with("/mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + id + "%2F"))
        << u.target;
    const auto credential = u.parameter("X-Amz-Credential");
    ASSERT_TRUE(credential);
    EXPECT_TRUE(credential->ends_with(scope_suffix)) << *credential;
    const auto date = u.parameter("X-Amz-Date");
    ASSERT_TRUE(date);
    ASSERT_EQ(date->size(), 16U) << *date;  // YYYYMMDDTHHMMSSZ
    EXPECT_EQ(*credential, id + "%2F" + date->substr(0, 8) + scope_suffix);
    EXPECT_EQ(u.parameter("X-Amz-SignedHeaders"), std::optional<std::string>("host"));
    const auto signature = u.parameter("X-Amz-Signature");
    ASSERT_TRUE(signature);
    EXPECT_EQ(signature->size(), 64U) << *signature;
    std::string signed_part = u.target;
    if (token.empty()) {
        EXPECT_FALSE(u.parameter("X-Amz-Security-Token")) << "no session token, no X-Amz-Security-Token";
    } else {
        const auto suffix = "&X-Amz-Security-Token=" + uri_encoded(token);
        ASSERT_TRUE(u.target.ends_with(suffix)) << "the session token is the last parameter";
        signed_part.resize(u.target.size() - suffix.size());
    }
    EXPECT_EQ(signed_part, botocore_target(u, id, key)) << "botocore signs differently";
    EXPECT_FALSE(u.client_cert) << "no client certificate with SigV4";
}

std::string credentials_ini(const std::string& token) {
    std::string ini =
        "# made up for the test\n[other]\naws_access_key_id = AKIAOTHEREXAMPLE0000\n"
        "aws_secret_access_key = not-this-one\n\n[default]\naws_access_key_id = " +
        key_id + "\naws_secret_access_key = " + secret + "\n";
    if (!token.empty()) ini += "aws_session_token = " + token + "\n";
    return ini;
}

// The AWS_* variables the env source reads: the daemon inherits the test's environment.
void unset_aws_environment() {
    for (const char* name : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                             "AWS_CREDENTIAL_EXPIRATION", "AWS_SHARED_CREDENTIALS_FILE", "AWS_PROFILE"})
        ::unsetenv(name);
}

class WebSocketAuthTest : public ::testing::Test {
protected:
    void SetUp() override { unset_aws_environment(); }

    broker_fixture broker;

    // A daemon whose Thing connects over WebSocket to `front` with `auth` lines, no certificate.
    [[nodiscard]] static daemon_setup over(const wss_front& front, const std::string& auth) {
        daemon_setup setup;
        setup.port = front.port();
        setup.client_certificate = false;
        setup.thing = "transport: websocket\nbackoff: { base: 100ms, cap: 300ms }\n" + auth;
        return setup;
    }
    [[nodiscard]] static std::string sigv4_from(const std::vector<std::string>& sources) {
        std::string y = "auth: sigv4\nregion: us-east-1\naws_credentials:\n";
        for (const auto& s : sources) y += "  - " + s + "\n";
        return y;
    }
};

TEST_F(WebSocketAuthTest, SigV4FromACredentialsFileIsBotocoresSignature) {
    for (const std::string& token : {std::string{}, session_token}) {
        SCOPED_TRACE(token.empty() ? "long-term key" : "with a session token");
        wss_front front(broker, {.require_client_cert = false});
        const auto file = secret_file(broker.dir(), "aws-credentials", credentials_ini(token));
        const auto connections_before = broker_connections(broker, "gateway-01");  // the loop's earlier daemon
        daemon_fixture daemon(broker, over(front, sigv4_from({"file: " + file.string()})));
        expect_round_trip(broker, daemon, 20, 1, "sigv4-qos1");
        expect_round_trip(broker, daemon, 10, 0, "sigv4-qos0");
        const auto upgrades = upgrades_of(front);
        ASSERT_EQ(upgrades.size(), 1U) << "one WebSocket for the one session";
        EXPECT_EQ(upgrades.front().header("host"), "localhost:" + std::to_string(front.port()));
        EXPECT_EQ(upgrades.front().header("sec-websocket-protocol"), "mqtt");
        expect_presigned(upgrades.front(), key_id, secret, token);
        EXPECT_EQ(broker_connections(broker, "gateway-01"), connections_before + 1);
        const auto log = read_file(daemon.log_file());
        EXPECT_EQ(log.find(secret), std::string::npos) << "the secret was logged";
        EXPECT_EQ(log.find("IQoJb3JpZ2lu"), std::string::npos) << "the session token was logged";
        EXPECT_EQ(log.find(key_id), std::string::npos) << "the whole key id was logged";
    }
}

// Every connection attempt presigns anew: the front dies, the daemon reconnects with a new
// signed request, and nothing an app published meanwhile at QoS 1 is lost.
TEST_F(WebSocketAuthTest, EveryAttemptIsSignedAnewAndNothingIsLost) {
    wss_front front(broker, {.require_client_cert = false});
    const auto file = secret_file(broker.dir(), "aws-credentials", credentials_ini(session_token));
    daemon_fixture daemon(broker, over(front, sigv4_from({"file: " + file.string()})));
    expect_round_trip(broker, daemon, 5);
    expect_nothing_lost_while_front_down(broker, daemon, front, [&] {
        // Attempts while the front is away reach no one: wait for two of them.
        const auto connecting = "thing gateway-01: connecting to localhost:" + std::to_string(front.port());
        EXPECT_TRUE(eventually([&] { return log_lines(daemon, connecting) >= 3; }, 20'000))
            << read_file(daemon.log_file());
    });
    const auto upgrades = upgrades_of(front);
    ASSERT_GE(upgrades.size(), 2U);
    // Each request signed for itself (botocore's check proves each signature was made for that
    // request's own X-Amz-Date).
    for (const auto& u : upgrades) expect_presigned(u, key_id, secret, session_token);
    const auto& first = upgrades.front();
    const auto& last = upgrades.back();
    // A new signature for a later time; within the same second the signature is the same.
    if (first.parameter("X-Amz-Date") != last.parameter("X-Amz-Date")) {
        EXPECT_NE(first.parameter("X-Amz-Signature"), last.parameter("X-Amz-Signature"));
    }
    EXPECT_GE(broker_connections(broker, "gateway-01"), 2U);
}

// No source gives credentials: each attempt fails before any request leaves, naming every source
// and why, once per attempt; thingmuxctl status shows it. Writing the file is enough: the next
// attempt connects and what was spooled meanwhile arrives.
TEST_F(WebSocketAuthTest, NoCredentialsIsReportedOncePerAttemptUntilTheFileIsWritten) {
    wss_front front(broker, {.require_client_cert = false});
    dbus_fixture bus;
    const auto file = broker.dir() / "aws-credentials-later";
    auto setup = over(front, sigv4_from({"file: " + file.string(), "env"}));
    setup.bus = bus.address();
    daemon_fixture daemon(broker, setup);
    const std::string none = "no AWS credentials: file " + file.string() +
                             " [default]: does not exist; env: "
                             "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set";
    ASSERT_TRUE(eventually([&] { return log_lines(daemon, none) >= 3; }, 30'000)) << read_file(daemon.log_file());

    observer_subscription cloud(broker, "dt/gateway-01/#", "observer-nocreds");
    ASSERT_TRUE(cloud.wait_ready());
    ipc_client app(daemon.socket_path());
    app.hello("while-unsigned");
    const auto expected = publish_all(app, "dt/gateway-01/x", numbered(10, "unsigned-"), ipc::errc::spooled);

    ::setenv("DBUS_SYSTEM_BUS_ADDRESS", bus.address().c_str(), 1);
    std::string out;
    EXPECT_EQ(run_command({ctl(), "--socket", daemon.socket_path().string(), "status"}, &out), 0) << out;
    ::unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
    EXPECT_NE(out.find("no AWS credentials"), std::string::npos) << out;
    EXPECT_NE(out.find(file.string()), std::string::npos) << out;

    // Once per attempt: as many reports as attempts ended (one more may be under way), and no
    // request reached the front.
    const auto attempts =
        log_lines(daemon, "thing gateway-01: connecting to localhost:" + std::to_string(front.port()));
    const auto reported = log_lines(daemon, none);
    EXPECT_TRUE(attempts == reported || attempts == reported + 1)
        << attempts << " attempts, " << reported << " reported\n"
        << read_file(daemon.log_file());
    EXPECT_GE(reported, 3U);
    EXPECT_EQ(front.upgrades().size(), 0U) << "an attempt without credentials sends nothing";
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 0U);

    // The file, written now, is read at the next attempt: no reload.
    (void)secret_file(broker.dir(), "aws-credentials-later", credentials_ini({}));
    EXPECT_EQ(cloud.wait_for_all(expected, 30'000), 0U) << "spooled messages lost" << read_file(daemon.log_file());
    const auto upgrades = upgrades_of(front);
    ASSERT_EQ(upgrades.size(), 1U);
    expect_presigned(upgrades.front(), key_id, secret, {});
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 1U);
}

// Credentials from the AWS IoT credentials provider for the Thing's certificate, living 20 s:
// renewed 5 s before they expire, and the daemon reconnects with a URL signed with the new ones
// while messages keep flowing.
TEST_F(WebSocketAuthTest, CredentialsProviderRenewalReconnectsWithNewCredentials) {
    credentials_provider_fixture provider({.lifetime = std::chrono::seconds{20}});
    wss_front front(broker, {.require_client_cert = false});
    const auto thing = provider.thing("gateway-01");
    auto setup =
        over(front, "auth: sigv4\nregion: us-east-1\ncert: " + thing.cert.string() + "\nkey: " + thing.key.string() +
                        "\naws_credentials:\n  - iot_credentials_provider:\n" + "      endpoint: " + provider.host() +
                        ":" + std::to_string(provider.port()) + "\n      role_alias: " + provider.role_alias() +
                        "\n      ca: " + provider.ca_file().string() + "\n");
    daemon_fixture daemon(broker, setup);
    expect_round_trip(broker, daemon, 10, 1, "provider-before");

    auto records = provider.records();
    ASSERT_GE(records.size(), 1U);
    const auto first_key = records.front().access_key_id;
    EXPECT_EQ(records.front().status, 200);
    EXPECT_EQ(records.front().thing, "gateway-01");
    EXPECT_EQ(records.front().path, "/role-aliases/" + provider.role_alias() + "/credentials");
    auto upgrades = upgrades_of(front);
    ASSERT_EQ(upgrades.size(), 1U);
    EXPECT_TRUE(upgrades.front().target.starts_with(
        "/mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + first_key + "%2F"))
        << upgrades.front().target;
    const auto token = upgrades.front().parameter("X-Amz-Security-Token");
    ASSERT_TRUE(token) << upgrades.front().target;
    EXPECT_TRUE(upgrades.front().target.ends_with("&X-Amz-Security-Token=" + *token)) << "the token comes last";
    EXPECT_GT(token->size(), 600U) << "the provider's 600-byte token, encoded";

    // Messages flow across the renewal (at 15 s): one at a time, each awaited, until the front
    // records an upgrade signed with other credentials (bounded: 45 s).
    observer_subscription cloud(broker, "dt/gateway-01/#", "observer-renewal");
    ASSERT_TRUE(cloud.wait_ready());
    ipc_client app(daemon.socket_path());
    ASSERT_TRUE(hello_connected(app, "across-renewal"));
    const auto renewed = [&] {
        upgrades = upgrades_of(front);
        return std::any_of(upgrades.begin(), upgrades.end(), [&](const upgrade& u) {
            return !u.target.starts_with("/mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + first_key);
        });
    };
    std::vector<std::string> expected;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{45};
    bool done = false;
    for (int i = 1; !done && std::chrono::steady_clock::now() < deadline; ++i) {
        const auto p = "flow-" + std::to_string(i);
        const auto r = app.publish("dt/gateway-01/z", p, 1);
        ASSERT_TRUE(ipc::accepted(r.code)) << r.message;
        expected.push_back("dt/gateway-01/z " + p);
        (void)cloud.wait_for_all({expected.back()}, 5'000);
        done = eventually(renewed, 250);  // paces the loop: about four messages a second
    }
    ASSERT_TRUE(done) << "no upgrade with renewed credentials within 45 s\n" << read_file(daemon.log_file());
    for (auto& line : publish_all(app, "dt/gateway-01/z", numbered(10, "after-"))) expected.push_back(std::move(line));
    EXPECT_EQ(cloud.wait_for_all(expected, 30'000), 0U) << "messages lost across the renewal\n"
                                                        << read_file(daemon.log_file());
    EXPECT_GE(expected.size(), 20U) << "messages flowed before and across the renewal";

    records = provider.records();
    ASSERT_GE(records.size(), 2U) << "one exchange, then the renewal";
    EXPECT_NE(records[1].access_key_id, first_key) << "the provider hands out new key ids";
    const auto& last = upgrades.back();
    EXPECT_TRUE(last.target.starts_with(
        "/mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + records.back().access_key_id + "%2F"))
        << last.target << " not signed with the latest credentials " << records.back().access_key_id;
    EXPECT_NE(last.parameter("X-Amz-Security-Token"), token) << "the renewed session token";
    EXPECT_GE(broker_connections(broker, "gateway-01"), 2U) << "reconnected after the renewal";
    expect_round_trip(broker, daemon, 10, 1, "provider-after");
    const auto log = read_file(daemon.log_file());
    EXPECT_EQ(log.find(first_key), std::string::npos) << "a whole key id was logged";
}

// A custom authorizer over WebSocket: the name, the token and the signature go as headers of the
// upgrade request (the relay logs in at the broker with its own certificate).
TEST_F(WebSocketAuthTest, CustomAuthorizerSendsItsHeadersWithTheUpgrade) {
    const std::string token = "tok-3f9a.1";
    const std::string signature = "c2ln+bi8/dA==";
    wss_front front(broker, {.require_client_cert = false});
    daemon_fixture daemon(
        broker, over(front,
                     "auth: custom-authorizer\ncustom_authorizer:\n  name: fleet-authorizer\n"
                     "  token_key_name: device-token\n  token: " +
                         secret_file(broker.dir(), "token", token + "\n").string() +
                         "\n  signature: " + secret_file(broker.dir(), "signature", signature + "\n").string() + "\n"));
    expect_round_trip(broker, daemon, 20, 1, "authorizer-over-wss");
    const auto upgrades = upgrades_of(front);
    ASSERT_EQ(upgrades.size(), 1U);
    const auto& u = upgrades.front();
    EXPECT_EQ(u.target, "/mqtt") << "no SigV4 query with a custom authorizer";
    EXPECT_EQ(u.header("x-amz-customauthorizer-name"), "fleet-authorizer");
    EXPECT_EQ(u.header("device-token"), token);
    EXPECT_EQ(u.header("x-amz-customauthorizer-signature"), signature);
    EXPECT_EQ(u.header("sec-websocket-protocol"), "mqtt");
    EXPECT_FALSE(u.client_cert);
    const auto log = read_file(daemon.log_file());
    EXPECT_EQ(log.find(token), std::string::npos) << "the token was logged";
    EXPECT_EQ(log.find("c2ln"), std::string::npos) << "the signature was logged";
}

}  // namespace
}  // namespace thingmux::test
