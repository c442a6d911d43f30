// The AWS IoT credentials provider client (daemon/aws/iot_credentials_provider.hpp) against a
// local provider over real TLS (tests/support/iot-credentials-provider): the exchange that
// checks the client certificate, the role alias and the x-amzn-iot-thingname header; renewal
// before expiry with a reconnect asked for; the provider's refusals with its message; hostile
// answers (garbage, endless, none, already expired) refused within bounds; a certificate the
// provider does not trust; and the way through tinyproxy.
#include "daemon/aws/iot_credentials_provider.hpp"
#include "daemon/uplink/error.hpp"
#include "tests/support/credentials_provider_fixture.hpp"
#include "tests/support/measure.hpp"
#include "tests/support/tinyproxy_fixture.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <unistd.h>

#include <algorithm>

namespace thingmux::test {
namespace {

using namespace std::chrono_literals;
using fixture_mode = credentials_provider_fixture::mode;
using uplink::errc;

aws::iot_credentials_settings settings_for(const credentials_provider_fixture& provider, const identity& who) {
    aws::iot_credentials_settings s;
    s.thing_name = who.name;
    s.endpoint = provider.host();
    s.port = provider.port();
    s.role_alias = provider.role_alias();
    s.tls = {.ca_file = provider.ca_file(), .cert_file = who.cert, .key_file = who.key};
    s.timeout = 5s;
    return s;
}

// The provider on its own io_context, run by the test's thread.
class client {
public:
    explicit client(aws::iot_credentials_settings settings, aws::iot_credentials_retry retry = {}) {
        provider = aws::iot_credentials_provider::create(io, std::move(settings), retry);
        provider->on_reconnect_needed([this] { ++reconnects; });
    }
    ~client() {
        provider->stop();
        io.restart();
        io.run_for(2s);  // lets a cancelled exchange's handlers run (returns once nothing is left)
    }
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    struct result {
        std::error_code error;
        aws::credentials value;
    };

    // Runs the event loop until `pred` holds or `timeout` passes; returns pred().
    template <typename Pred>
    bool run_until(Pred pred, std::chrono::milliseconds timeout = 20s) {
        const auto end = std::chrono::steady_clock::now() + timeout;
        while (!pred() && std::chrono::steady_clock::now() < end) {
            if (io.stopped()) io.restart();  // it stops whenever it runs out of work
            io.run_for(5ms);
        }
        return pred();
    }

    result get() {
        std::optional<result> r;
        provider->async_get([&](std::error_code ec, aws::credentials c) { r = result{ec, std::move(c)}; });
        EXPECT_TRUE(run_until([&] { return r.has_value(); })) << "async_get() never answered";
        return r.value_or(result{});
    }

    boost::asio::io_context io;
    std::shared_ptr<aws::iot_credentials_provider> provider;
    std::size_t reconnects = 0;
};

// A failure a user can act on: not credentials, this condition, and a message without raw
// control characters. `expected`: an uplink::errc, or a std::errc that the system's error means.
template <typename Condition>
void expect_failure(const client::result& r, const client& c, Condition expected) {
    EXPECT_TRUE(r.error == expected) << r.error.message() << ": " << c.provider->last_error();
    EXPECT_TRUE(r.value.access_key_id.empty());
    EXPECT_TRUE(r.value.session_token.empty());
    const auto& detail = c.provider->last_error();
    EXPECT_FALSE(detail.empty());
    EXPECT_EQ(detail.find_first_of("\n\r\x1b"), std::string::npos) << detail;
}

TEST(IotCredentialsProvider, ExchangesTheThingsCertificateForCredentials) {
    credentials_provider_fixture provider;
    client c(settings_for(provider, provider.thing("gateway-01")));
    const auto before = std::chrono::system_clock::now();

    // Two callers before any answer share one exchange.
    std::vector<client::result> results;
    for (int i = 0; i < 2; ++i)
        c.provider->async_get([&](std::error_code ec, aws::credentials v) { results.push_back({ec, std::move(v)}); });
    ASSERT_TRUE(c.run_until([&] { return results.size() == 2; }));
    for (const auto& r : results) {
        ASSERT_FALSE(r.error) << c.provider->last_error();
        EXPECT_EQ(r.value.access_key_id, "ASIATESTKEY000000001");
        EXPECT_EQ(r.value.secret_access_key.size(), 40U);
        EXPECT_GT(r.value.session_token.size(), 700U);
        ASSERT_TRUE(r.value.expiration);
        EXPECT_GT(*r.value.expiration, before + 3590s);
        EXPECT_LE(*r.value.expiration, std::chrono::system_clock::now() + 3600s);
    }
    const auto records = provider.records();
    ASSERT_EQ(records.size(), 1U);
    EXPECT_EQ(records[0].status, 200);
    EXPECT_EQ(records[0].path, "/role-aliases/thingmux-role/credentials");
    EXPECT_EQ(records[0].thing, "gateway-01");
    EXPECT_EQ(records[0].cert_cn, "gateway-01");

    // Fresh credentials come from the cache: no second exchange, no reconnect asked for.
    const auto again = c.get();
    EXPECT_FALSE(again.error);
    EXPECT_EQ(again.value.access_key_id, "ASIATESTKEY000000001");
    EXPECT_EQ(provider.records().size(), 1U);
    EXPECT_EQ(c.provider->stats().exchanges, 1U);
    EXPECT_EQ(c.reconnects, 0U);
    EXPECT_TRUE(c.provider->last_error().empty());
}

TEST(IotCredentialsProvider, RenewsBeforeExpiryAndAsksForAReconnect) {
    // 8 s credentials: renewed 2 s (a quarter of their life) before they expire.
    credentials_provider_fixture provider({.lifetime = 8s});
    client c(settings_for(provider, provider.thing("gateway-01")));
    const auto first = c.get();
    ASSERT_FALSE(first.error) << c.provider->last_error();
    EXPECT_EQ(first.value.access_key_id, "ASIATESTKEY000000001");

    ASSERT_TRUE(c.run_until([&] { return c.reconnects >= 1; }, 20s)) << c.provider->last_error();
    EXPECT_EQ(c.reconnects, 1U);
    EXPECT_EQ(c.provider->stats().renewals, 1U);
    const auto records = provider.records();
    ASSERT_EQ(records.size(), 2U);
    EXPECT_EQ(records[1].status, 200);
    EXPECT_EQ(records[1].thing, "gateway-01");
    EXPECT_LT(records[1].time, records[0].expiration) << "renewed only after the first credentials expired";
    EXPECT_GT(records[1].time, records[0].time + 3) << "renewed long before a quarter of the lifetime was left";

    // The reconnect signs with the renewed credentials, from the cache.
    const auto renewed = c.get();
    ASSERT_FALSE(renewed.error);
    EXPECT_EQ(renewed.value.access_key_id, "ASIATESTKEY000000002");
    EXPECT_EQ(provider.records().size(), 2U);
    EXPECT_EQ(aws::iot_credentials_provider::renewal_margin(8s), 2s);
    EXPECT_EQ(aws::iot_credentials_provider::renewal_margin(3600s), 300s);
}

TEST(IotCredentialsProvider, RenewalRetriesAGarbledAnswerWithBackoffBeforeExpiry) {
    // 16 s credentials: renewed 4 s before they expire, time enough for a few tries under load.
    credentials_provider_fixture provider({.lifetime = 16s});
    client c(settings_for(provider, provider.thing("gateway-01")), {.base = 200ms, .cap = 400ms});
    ASSERT_FALSE(c.get().error) << c.provider->last_error();
    provider.set_mode(fixture_mode::garbage);
    // The renewal (about 12 s in) meets garbage and tries again within 400 ms, as often as it
    // takes; a good answer before the expiry ends it.
    const auto garbled = [&] {
        const auto all = provider.records();
        return std::count_if(all.begin(), all.end(),
                             [](const auto& r) { return r.status == 200 && r.access_key_id.empty(); });
    };
    ASSERT_TRUE(c.run_until([&] { return garbled() >= 2; }, 30s)) << c.provider->last_error();
    EXPECT_EQ(c.reconnects, 0U) << "no reconnect without renewed credentials";
    provider.set_mode(fixture_mode::credentials);
    ASSERT_TRUE(c.run_until([&] { return c.reconnects >= 1; }, 10s)) << c.provider->last_error();
    const auto records = provider.records();
    ASSERT_GE(records.size(), 4U);
    EXPECT_EQ(records.back().access_key_id, "ASIATESTKEY000000002");
    EXPECT_LT(records.back().time, records.front().expiration);
    for (std::size_t i = 2; i < records.size(); ++i)
        EXPECT_LT(records[i].time - records[i - 1].time, 3.0) << "a retry waited past the back-off's cap";
    EXPECT_EQ(c.reconnects, 1U);
    EXPECT_EQ(c.get().value.access_key_id, "ASIATESTKEY000000002");
}

TEST(IotCredentialsProvider, RenewalRefusedIsNotRetried) {
    credentials_provider_fixture provider({.lifetime = 8s});
    client c(settings_for(provider, provider.thing("gateway-01")), {.base = 200ms, .cap = 400ms});
    ASSERT_FALSE(c.get().error) << c.provider->last_error();
    provider.set_mode(fixture_mode::refuse);
    ASSERT_TRUE(c.run_until([&] { return provider.answered(403) >= 1; }, 20s));
    // Past the old credentials' expiry: nothing more was asked, nothing renewed.
    const auto expired = provider.records().front().expiration;
    c.run_until(
        [&] {
            return std::chrono::system_clock::now().time_since_epoch() > std::chrono::duration<double>(expired + 1);
        },
        10s);
    EXPECT_EQ(provider.answered(403), 1U);
    EXPECT_EQ(c.reconnects, 0U);
    EXPECT_NE(c.provider->last_error().find("HTTP 403"), std::string::npos);
    // The next connection attempt asks again, and reports the refusal once.
    EXPECT_EQ(c.get().error, errc::credentials_provider_refused);
    EXPECT_EQ(provider.answered(403), 2U);
}

TEST(IotCredentialsProvider, RefusalCarriesTheProvidersMessageEscaped) {
    credentials_provider_fixture provider({.answer = fixture_mode::refuse});
    client c(settings_for(provider, provider.thing("gateway-01")));
    const auto r = c.get();
    expect_failure(r, c, errc::credentials_provider_refused);
    EXPECT_TRUE(uplink::is_fatal(r.error)) << "a refusal does not pass by retrying";
    const auto& detail = c.provider->last_error();
    EXPECT_NE(detail.find("answered HTTP 403: Access Denied\\n\\x1b[31mFORGED LOG LINE"), std::string::npos) << detail;
    EXPECT_NE(detail.find("role alias thingmux-role, thing name gateway-01"), std::string::npos) << detail;
    EXPECT_EQ(provider.answered(403), 1U);

    // Each attempt asks once and reports once.
    const auto again = c.get();
    EXPECT_EQ(again.error, errc::credentials_provider_refused);
    EXPECT_EQ(provider.answered(403), 2U);
    EXPECT_EQ(c.provider->stats().failures, 2U);
}

TEST(IotCredentialsProvider, UnknownRoleAliasAndThingNameNotOfTheCertificate) {
    credentials_provider_fixture provider;
    struct case_t {
        std::string role_alias;
        std::string thing_name;
        std::string words;
    };
    const case_t cases[] = {
        {"no-such-alias", "gateway-01", "HTTP 404: Role alias does not exist"},
        {provider.role_alias(), "gateway-02", "HTTP 403: Invalid thing name passed"},  // gateway-01's certificate
    };
    for (const auto& k : cases) {
        auto s = settings_for(provider, provider.thing("gateway-01"));
        s.role_alias = k.role_alias;
        s.thing_name = k.thing_name;
        client c(s);
        expect_failure(c.get(), c, errc::credentials_provider_refused);
        EXPECT_NE(c.provider->last_error().find(k.words), std::string::npos) << c.provider->last_error();
    }
    EXPECT_EQ(provider.answered(404), 1U);
    EXPECT_EQ(provider.answered(403), 1U);
    EXPECT_EQ(provider.answered(200), 0U);
}

// Answers that give no credentials and may pass (retrying can help), each with its message.
TEST(IotCredentialsProvider, GarbledSilentAndExpiredAnswersAreClearTransientErrors) {
    struct case_t {
        fixture_mode answer;
        std::error_code expected;
        std::string words;  // in the message
    };
    const case_t cases[] = {
        {fixture_mode::garbage, errc::credentials_provider_bad_answer,
         "gave an answer that cannot be used: the body is not a JSON document"},
        {fixture_mode::silent, errc::timed_out,
         "timed out after 1500 ms while waiting for the answer of the AWS IoT credentials provider localhost:"},
        // Clock skew: NTP setting the clock right later makes the next attempt succeed.
        {fixture_mode::expired, errc::credentials_provider_expired, "s before this machine's clock"},
    };
    for (const auto& k : cases) {
        SCOPED_TRACE(k.words);
        credentials_provider_fixture provider({.answer = k.answer});
        auto s = settings_for(provider, provider.thing("gateway-01"));
        s.timeout = 1500ms;
        client c(s);
        const auto r = c.get();
        expect_failure(r, c, k.expected);
        EXPECT_FALSE(uplink::is_fatal(r.error));
        EXPECT_NE(c.provider->last_error().find(k.words), std::string::npos) << c.provider->last_error();
        EXPECT_EQ(c.provider->stats().failures, 1U);
    }
}

TEST(IotCredentialsProvider, StopEndsAPendingExchange) {
    credentials_provider_fixture provider({.answer = fixture_mode::silent});
    client c(settings_for(provider, provider.thing("gateway-01")));
    std::optional<std::error_code> pending;
    c.provider->async_get([&](std::error_code ec, aws::credentials) { pending = ec; });
    ASSERT_TRUE(c.run_until([&] { return !provider.records().empty(); })) << "the request never arrived";
    c.provider->stop();
    ASSERT_TRUE(c.run_until([&] { return pending.has_value(); }, 2s));
    EXPECT_EQ(*pending, std::errc::operation_canceled);
    EXPECT_EQ(c.get().error, errc::stopped);
    EXPECT_EQ(provider.records().size(), 1U);
}

TEST(IotCredentialsProvider, EndlessAnswerIsCutOffWithinBoundedMemory) {
    credentials_provider_fixture provider({.answer = fixture_mode::huge});
    client c(settings_for(provider, provider.thing("gateway-01")));
    const auto rss_before = resident_bytes(::getpid());
    const auto r = c.get();
    const auto rss_after = resident_bytes(::getpid());
    expect_failure(r, c, errc::credentials_provider_bad_answer);
    EXPECT_NE(c.provider->last_error().find("body is larger than 64 KiB"), std::string::npos)
        << c.provider->last_error();
#ifndef THINGMUX_SANITIZED  // under ASan, VmRSS measures its quarantine and shadow memory
    EXPECT_LT(rss_after, rss_before + 8 * 1024 * 1024) << "the answer was buffered beyond its limit";
#else
    (void)rss_before;
    (void)rss_after;
#endif
    // The client hung up: the server stopped long before the 256 MiB it would send.
    ASSERT_TRUE(eventually([&] { return !provider.records().empty(); }, 15'000));
    EXPECT_EQ(provider.records()[0].note.rfind("huge: ", 0), 0U) << provider.records()[0].note;
    EXPECT_LT(std::stoull(provider.records()[0].note.substr(6)), 64ULL * 1024 * 1024);
}

TEST(IotCredentialsProvider, CertificateTheProviderDoesNotTrustIsAClearTlsError) {
    credentials_provider_fixture provider;
    client c(settings_for(provider, provider.wrong_ca()));
    const auto r = c.get();
    expect_failure(r, c, errc::client_certificate_rejected);
    EXPECT_TRUE(uplink::is_fatal(r.error));
    EXPECT_NE(c.provider->last_error().find("the AWS IoT credentials provider rejected our client certificate " +
                                            provider.wrong_ca().cert.string()),
              std::string::npos)
        << c.provider->last_error();
    ASSERT_TRUE(eventually([&] { return !provider.records().empty(); }));
    EXPECT_EQ(provider.records()[0].status, 0);
    EXPECT_EQ(provider.records()[0].note.rfind("tls: ", 0), 0U) << provider.records()[0].note;
}

TEST(IotCredentialsProvider, ProviderCertificateNotSignedByTheCaFile) {
    credentials_provider_fixture provider;
    auto s = settings_for(provider, provider.thing("gateway-01"));
    s.tls.ca_file = provider.other_ca_file();
    client c(s);
    expect_failure(c.get(), c, errc::server_certificate_untrusted);
    EXPECT_NE(c.provider->last_error().find("not trusted by CA file " + provider.other_ca_file().string()),
              std::string::npos)
        << c.provider->last_error();
    EXPECT_EQ(provider.answered(200), 0U);
}

TEST(IotCredentialsProvider, UnreachableProviderIsTransient) {
    credentials_provider_fixture provider;
    auto s = settings_for(provider, provider.thing("gateway-01"));
    s.port = free_tcp_port();
    client c(s);
    const auto r = c.get();
    expect_failure(r, c, std::errc::connection_refused);
    EXPECT_FALSE(uplink::is_fatal(r.error));
    EXPECT_EQ(c.provider->last_error(), "cannot connect to the AWS IoT credentials provider localhost:" +
                                            std::to_string(s.port) + ": Connection refused");
}

TEST(IotCredentialsProvider, ThroughTinyproxy) {
    credentials_provider_fixture provider;
    tinyproxy_fixture proxy({});
    auto s = settings_for(provider, provider.thing("gateway-01"));
    s.proxy = uplink::proxy_route{.url = proxy::parse_url(proxy.url()).value.value()};
    client c(s);
    const auto r = c.get();
    ASSERT_FALSE(r.error) << c.provider->last_error();
    EXPECT_EQ(r.value.access_key_id, "ASIATESTKEY000000001");
    EXPECT_EQ(proxy.connect_requests("localhost:" + std::to_string(provider.port())), 1U);
    EXPECT_EQ(provider.answered(200), 1U);
}

}  // namespace
}  // namespace thingmux::test
