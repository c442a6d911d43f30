#include "daemon/aws/websocket_signer.hpp"

#include "common/aws_region.hpp"
#include "daemon/aws/credential_chain.hpp"
#include "daemon/aws/iot_credentials_provider.hpp"
#include "daemon/aws/mqtt_url.hpp"
#include "daemon/uplink/error.hpp"

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace thingmux::aws {
namespace {

constexpr const char* refusal_advice =
    "the signature was refused: the AWS credentials expired or lack iot:Connect, or this machine's clock is off "
    "(aws_credentials, timedatectl status)";

// One Thing's signer: the chain of static sources and, per iot_credentials_provider entry, its
// provider (made on first use, with the io_context of the uplink that asks).
class signer : public std::enable_shared_from_this<signer> {
public:
    signer(const config::thing& t, thing_identity identity)
        : thing_name_(t.name), region_(t.region), chain_(t.aws_credentials), identity_(std::move(identity)) {}

    ~signer() {
        for (auto& [index, p] : providers_) p->stop();
    }
    signer(const signer&) = delete;
    signer& operator=(const signer&) = delete;

    void request(boost::asio::io_context& io, const std::string& host, std::uint16_t port,
                 uplink::websocket_request_handler done) {
        // The Host header the WebSocket transport sends, which is the signed one.
        const std::string signed_host = port == 443 ? host : host + ':' + std::to_string(port);
        resolve(io, signed_host, chain_.resolve(), std::move(done));
    }

private:
    void resolve(boost::asio::io_context& io, const std::string& host, chain_result r,
                 uplink::websocket_request_handler done) {
        if (r.what == chain_result::outcome::found) return done(sign(host, r.found, r.source_name));
        if (r.what == chain_result::outcome::nothing)
            return done(uplink::websocket_request_result{
                .request = {}, .error = r.error(), .detail = r.describe(), .expires = {}});
        const auto index = r.source;
        auto provider = provider_for(io, index);
        provider->async_get([self = shared_from_this(), &io, host, index, r = std::move(r), provider,
                             done = std::move(done)](std::error_code ec, credentials c) mutable {
            if (!ec) return done(self->sign(host, c, r.source_name));
            // The provider's failure is reported when no later source gives credentials either;
            // a fatal one (refused, its certificate) keeps its code so that the uplink says so.
            auto tried = std::move(r.tried);
            tried.push_back(r.source_name + ": " + provider->last_error());
            auto next = self->chain_.resolve(index + 1, std::move(tried));
            if (next.what == chain_result::outcome::nothing && uplink::is_fatal(ec))
                return done(uplink::websocket_request_result{
                    .request = {}, .error = ec, .detail = next.describe(), .expires = {}});
            self->resolve(io, host, std::move(next), std::move(done));
        });
    }

    std::shared_ptr<iot_credentials_provider> provider_for(boost::asio::io_context& io, std::size_t index) {
        auto& p = providers_[index];
        if (p) return p;
        const auto& source = chain_.sources().at(index);
        iot_credentials_settings s;
        s.thing_name = thing_name_;
        s.endpoint = source.endpoint;
        s.port = source.port;
        s.role_alias = source.role_alias;
        s.tls = identity_.tls;
        s.tls.alpn.clear();
        if (!source.ca.empty()) s.tls.ca_file = config::resolve_file(source.ca);
        s.proxy = identity_.proxy;
        s.timeout = identity_.timeout;
        p = iot_credentials_provider::create(io, std::move(s));
        return p;
    }

    [[nodiscard]] uplink::websocket_request_result sign(const std::string& host, const credentials& c,
                                                        const std::string& source_name) const {
        auto presigned = presign_mqtt_target(host, region_, c, std::chrono::system_clock::now());
        if (presigned.error) {
            return {.request = {},
                    .error = presigned.error,
                    .detail = "AWS credentials " + key_id_hint(c.access_key_id) + " from " + source_name +
                              " cannot sign the WebSocket request: " + presigned.error.message(),
                    .expires = {}};
        }
        return {.request = {.target = std::move(presigned.target), .headers = {}, .refusal_advice = refusal_advice},
                .error = {},
                .detail = {},
                .expires = c.expiration};
    }

    std::string thing_name_;
    std::string region_;
    credential_chain chain_;
    thing_identity identity_;
    std::map<std::size_t, std::shared_ptr<iot_credentials_provider>> providers_;
};

}  // namespace

uplink::websocket_request_source sigv4_request_source(const config::thing& t, thing_identity identity) {
    auto s = std::make_shared<signer>(t, std::move(identity));
    return [s](boost::asio::io_context& io, const std::string& host, std::uint16_t port,
               uplink::websocket_request_handler done) { s->request(io, host, port, std::move(done)); };
}

}  // namespace thingmux::aws
