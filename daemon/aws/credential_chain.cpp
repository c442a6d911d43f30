#include "daemon/aws/credential_chain.hpp"

#include "common/regular_file.hpp"
#include "daemon/uplink/error.hpp"

#include <cerrno>
#include <cstdlib>

namespace thingmux::aws {
namespace {

using kind = config::aws_credential_source::kind;

lookup read_file(const std::filesystem::path& configured, const std::string& profile) {
    const auto file = config::resolve_file(configured);
    if (file.empty()) return {std::nullopt, "CREDENTIALS_DIRECTORY is not set (no systemd credentials)"};
    const auto c = files::read_regular(file, max_credentials_file_bytes);
    if (c.os_error == ENOENT) return {std::nullopt, "does not exist"};
    if (c.os_error != 0) return {std::nullopt, "not readable by thingmuxd: " + c.problem};
    if (!c.ok()) return {std::nullopt, c.problem};
    return parse_credentials_file(c.bytes, profile);
}

}  // namespace

std::error_code chain_result::error() const {
    return what == outcome::nothing ? std::error_code{uplink::errc::aws_credentials_unavailable} : std::error_code{};
}

std::string chain_result::describe() const {
    if (what == outcome::found) return "AWS credentials " + key_id_hint(found.access_key_id) + " from " + source_name;
    if (what == outcome::needs_provider) return "AWS credentials to ask from " + source_name;
    std::string out = "no AWS credentials: ";
    for (std::size_t i = 0; i < tried.size(); ++i) out += (i == 0 ? "" : "; ") + tried[i];
    if (tried.empty()) out += "aws_credentials lists no source";
    return out;
}

std::string describe(const config::aws_credential_source& s, const environment& getenv) {
    switch (s.type) {
        case kind::file:
            return "file " + s.file.string() + " [" + s.profile + "]";
        case kind::environment:
            return "env";
        case kind::profile: {
            const auto file = shared_credentials_file(getenv);
            return "profile " + s.profile + " (" + (file.empty() ? "no HOME" : file) + ")";
        }
        case kind::iot_credentials_provider:
            return "iot_credentials_provider " + s.role_alias + " at " + s.endpoint;
    }
    return "?";
}

environment process_environment() {
    return [](const char* name) -> const char* { return std::getenv(name); };
}

credential_chain::credential_chain(std::vector<config::aws_credential_source> sources, environment getenv)
    : sources_(std::move(sources)), getenv_(std::move(getenv)) {}

lookup credential_chain::read(const config::aws_credential_source& s) const {
    switch (s.type) {
        case kind::file:
            return read_file(s.file, s.profile);
        case kind::environment:
            return credentials_from_environment(getenv_);
        case kind::profile: {
            const auto file = shared_credentials_file(getenv_);
            if (file.empty()) return {std::nullopt, "neither AWS_SHARED_CREDENTIALS_FILE nor HOME is set"};
            return read_file(file, s.profile);
        }
        case kind::iot_credentials_provider:
            break;
    }
    return {std::nullopt, "not a static source"};
}

chain_result credential_chain::resolve(std::size_t from, std::vector<std::string> tried) const {
    chain_result r;
    r.tried = std::move(tried);
    for (std::size_t i = from; i < sources_.size(); ++i) {
        const auto& s = sources_[i];
        r.source = i;
        r.source_name = describe(s, getenv_);
        if (s.type == kind::iot_credentials_provider) {
            r.what = chain_result::outcome::needs_provider;
            return r;
        }
        auto found = read(s);
        if (found.found) {
            r.what = chain_result::outcome::found;
            r.found = std::move(*found.found);
            return r;
        }
        r.tried.push_back(r.source_name + ": " + found.why_not);
    }
    r.what = chain_result::outcome::nothing;
    r.source = sources_.size();
    r.source_name.clear();
    return r;
}

}  // namespace thingmux::aws
