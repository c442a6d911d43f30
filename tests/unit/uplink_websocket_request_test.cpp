// make_websocket_transport refuses an upgrade request that would break the HTTP request (a line
// break in the target or a header: a token file's trailing newline), and the WebSocket failures
// are classified for retrying: a subprotocol other than mqtt needs a configuration change, a
// refused upgrade (403: a signature refused, credentials expired) may pass with fresh ones.
#include "daemon/uplink/error.hpp"
#include "daemon/uplink/socket_transport.hpp"
#include "daemon/uplink/uplink.hpp"
#include "daemon/uplink/websocket_transport.hpp"

#include <gtest/gtest.h>

namespace thingmux::uplink {
namespace {

transport_result made(boost::asio::io_context& io, websocket_request request) {
    return make_websocket_transport(io, std::make_shared<socket_transport>(io, socket_transport::family::tcp),
                                    std::move(request));
}

TEST(UplinkWebSocketRequest, ASignedTargetAndHeadersAreAccepted) {
    boost::asio::io_context io;
    const auto r = made(io, {.target = "/mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc",
                             .headers = {{"x-amz-customauthorizer-name", "my-authorizer"}},
                             .refusal_advice = {}});
    ASSERT_TRUE(r.link) << r.detail;
    EXPECT_STREQ(r.link->name(), "websocket");
}

TEST(UplinkWebSocketRequest, ATargetThatIsNotAPathIsRefused) {
    boost::asio::io_context io;
    for (const std::string target : {"", "mqtt", "/mqtt x", "/mqtt\r\nX-Forged: 1"}) {
        const auto r = made(io, {.target = target, .headers = {}, .refusal_advice = {}});
        EXPECT_FALSE(r.link) << target;
        EXPECT_EQ(r.error, errc::credentials_unusable) << target;
        EXPECT_NE(r.detail.find("is not a path starting with '/'"), std::string::npos) << r.detail;
        EXPECT_EQ(r.detail.find('\n'), std::string::npos) << "the target is escaped in the message";
    }
}

TEST(UplinkWebSocketRequest, AHeaderWithALineBreakIsRefused) {
    boost::asio::io_context io;
    const auto r = made(
        io, {.target = "/mqtt", .headers = {{"x-amz-customauthorizer-signature", "token\n"}}, .refusal_advice = {}});
    EXPECT_FALSE(r.link);
    EXPECT_EQ(r.error, errc::credentials_unusable);
    EXPECT_NE(r.detail.find("trailing newline"), std::string::npos) << r.detail;
    const auto named = made(io, {.target = "/mqtt", .headers = {{"Bad Name", "v"}}, .refusal_advice = {}});
    EXPECT_FALSE(named.link);
}

TEST(UplinkWebSocketRequest, OnlyAnotherSubprotocolIsFatal) {
    EXPECT_TRUE(is_fatal(errc::websocket_wrong_subprotocol));
    for (const auto e : {errc::websocket_upgrade_refused, errc::websocket_closed, errc::websocket_oversized,
                         errc::websocket_malformed}) {
        EXPECT_FALSE(is_fatal(e)) << make_error_code(e).message();
        EXPECT_EQ(make_error_code(e).message().find("unknown"), std::string::npos);
    }
}

}  // namespace
}  // namespace thingmux::uplink

TEST(RenewalDelay, SignsAnewShortlyBeforeTheCredentialsExpire) {
    using namespace std::chrono_literals;
    const auto now = std::chrono::system_clock::now();
    // An hour's credentials: 150 s before; 20 s ones: an eighth of what is left (2.5 s) before.
    EXPECT_EQ(thingmux::uplink::renewal_delay(now + 3600s, now), std::chrono::system_clock::duration(3450s));
    EXPECT_EQ(thingmux::uplink::renewal_delay(now + 20s, now), std::chrono::system_clock::duration(17500ms));
    // Too close to the expiry (or past it) to gain anything.
    EXPECT_FALSE(thingmux::uplink::renewal_delay(now + 1s, now));
    EXPECT_FALSE(thingmux::uplink::renewal_delay(now - 5s, now));
}
