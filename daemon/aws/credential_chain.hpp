// The AWS credentials a Thing with auth: sigv4 signs with: its aws_credentials sources tried in
// the order written, read anew at each call (each connection attempt), so that a rewritten file
// or a refreshed environment is used without a reload. The static sources (file, env, profile)
// are read here, synchronously; an iot_credentials_provider entry needs I/O and is answered with
// needs_provider, for the caller to ask its credentials_provider:
//
//     auto r = chain.resolve();
//     while (r.what == chain_result::outcome::needs_provider) {
//         ... provider_for(r.source).async_get(...) -> on success: use them;
//         on failure: r = chain.resolve(r.source + 1, r.tried + {"iot_credentials_provider: why"});
//     }
//
// Messages name files, profiles and variables, never a secret (of a key id at most its first 4
// characters); they hold configured text, so log them through logging::escaped.
#pragma once

#include "common/aws_credentials.hpp"
#include "config/config.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <system_error>
#include <vector>

namespace thingmux::aws {

// Credentials from a source that needs I/O: the AWS IoT credentials provider (the Thing's
// certificate exchanged for temporary credentials). The handler runs on the implementation's
// executor, never inside async_get(); with an error, the credentials are empty.
class credentials_provider {
public:
    using handler = std::function<void(std::error_code, credentials)>;
    credentials_provider() = default;
    credentials_provider(const credentials_provider&) = delete;
    credentials_provider& operator=(const credentials_provider&) = delete;
    virtual ~credentials_provider() = default;
    virtual void async_get(handler h) = 0;
};

struct chain_result {
    enum class outcome : std::uint8_t {
        found,           // `found` holds the credentials of source `source`
        needs_provider,  // source `source` is an iot_credentials_provider: ask it
        nothing          // no source gave credentials: `tried` says why, source by source
    };
    outcome what = outcome::nothing;
    credentials found;
    std::size_t source = 0;          // the index in aws_credentials (found, needs_provider)
    std::string source_name;         // "file /etc/thingmux/aws-credentials [default]", "env", ...
    std::vector<std::string> tried;  // "env: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set", ...

    // errc::aws_credentials_unavailable when nothing was found, else none.
    [[nodiscard]] std::error_code error() const;
    // "no AWS credentials: file /x: does not exist; env: ... are not set"; for found, where from.
    [[nodiscard]] std::string describe() const;
};

// What a source is called in messages: "file /x [default]", "env", "profile dev (/root/.aws/credentials)",
// "iot_credentials_provider ALIAS at ENDPOINT".
[[nodiscard]] std::string describe(const config::aws_credential_source& s, const environment& getenv);

// thingmuxd's own environment (std::getenv).
[[nodiscard]] environment process_environment();

class credential_chain {
public:
    explicit credential_chain(std::vector<config::aws_credential_source> sources,
                              environment getenv = process_environment());

    // Tries the sources from index `from` on; `tried` carries the reasons of those before it.
    [[nodiscard]] chain_result resolve(std::size_t from = 0, std::vector<std::string> tried = {}) const;

    [[nodiscard]] const std::vector<config::aws_credential_source>& sources() const noexcept { return sources_; }

private:
    [[nodiscard]] lookup read(const config::aws_credential_source& s) const;

    std::vector<config::aws_credential_source> sources_;
    environment getenv_;
};

}  // namespace thingmux::aws
