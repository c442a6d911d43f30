// The schema walk's reader of YAML values, shared by the files that parse the sections of the
// configuration (parse.cpp: the document and its root; parse_things.cpp: things; parse_apps.cpp:
// apps; parse_settings.cpp: ipc, spool, log; parse_mqtt.cpp: mqtt). Every key is looked up in a
// known list (unknown keys are errors with a suggestion), every value is checked for type,
// syntax and range, and every problem is collected with the node's position. Internal to config/.
#pragma once

#include "config/config.hpp"
#include "config/values.hpp"

#include <yaml-cpp/yaml.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace thingmux::config::detail {

// sizeof(sockaddr_un::sun_path) on Linux: a socket path must be shorter, with its NUL.
inline constexpr std::size_t max_socket_path = 108;

source_location location_of(const YAML::Node& n);
std::string kind_of(const YAML::Node& n);
std::string join(std::span<const std::string_view> words);

struct field {
    YAML::Node key;
    YAML::Node value;
};
using fields = std::vector<std::pair<std::string, field>>;
const field* find(const fields& f, std::string_view key);

template <class E>
struct choice {
    std::string_view name;
    E value;
};

// The values of one configuration file, read one node at a time; the problems found so far.
class parser {
public:
    explicit parser(std::string file) : file_(std::move(file)) {}

    std::vector<diagnostic> diagnostics;

    void report(source_location at, std::string path, std::string message, std::string hint, bool warning = false);
    void error(const YAML::Node& at, std::string path, std::string message, std::string hint = {});
    void warn(const YAML::Node& at, std::string path, std::string message, std::string hint = {});
    [[nodiscard]] bool has_errors() const;

    // The keys of a mapping (null counts as empty); unknown and repeated keys are reported.
    std::optional<fields> mapping(const YAML::Node& node, const std::string& path, std::span<const std::string_view> known);

    // A sequence (null counts as empty).
    std::optional<std::vector<YAML::Node>> sequence(const YAML::Node& node, const std::string& path, std::string_view example);

    std::optional<std::string> scalar(const YAML::Node& node, const std::string& path, std::string_view what);

    std::optional<std::string> string(const YAML::Node& node, const std::string& path, bool allow_empty = false);

    std::optional<std::uint64_t> integer(const YAML::Node& node, const std::string& path, std::uint64_t min, std::uint64_t max);

    // Number of bytes; `unlimited` -> engaged optional holding nullopt.
    std::optional<std::optional<std::uint64_t>> size(const YAML::Node& node, const std::string& path, std::uint64_t min,
                                                    std::uint64_t max, bool allow_unlimited);

    // A count; `unlimited` -> engaged optional holding nullopt.
    std::optional<std::optional<std::uint64_t>> count(const YAML::Node& node, const std::string& path, std::uint64_t min,
                                                     std::uint64_t max, bool allow_unlimited);

    std::optional<duration> time(const YAML::Node& node, const std::string& path, duration min, duration max);

    static std::string describe(duration d);

    std::optional<std::chrono::seconds> whole_seconds(const YAML::Node& node, const std::string& path, std::chrono::seconds max);

    template <class E, std::size_t N>
    std::optional<E> enumeration(const YAML::Node& node, const std::string& path, const std::array<choice<E>, N>& choices) {
        std::array<std::string_view, N> names{};
        for (std::size_t i = 0; i < N; ++i) names[i] = choices[i].name;
        const auto s = scalar(node, path, "one of " + join(names));
        if (!s) return std::nullopt;
        for (const auto& c : choices) {
            if (c.name == *s) return c.value;
        }
        const auto suggestion = closest(*s, names);
        error(node, path, "'" + *s + "' is not one of " + join(names),
              suggestion.empty() ? std::string{} : "did you mean '" + suggestion + "'?");
        return std::nullopt;
    }

    std::optional<bool> boolean(const YAML::Node& node, const std::string& path);

    std::optional<std::filesystem::path> absolute_path(const YAML::Node& node, const std::string& path);

    // An absolute path, or "credential:NAME" (a systemd credential, config::resolve_file()).
    std::optional<std::filesystem::path> file_or_credential(const YAML::Node& node, const std::string& path);

    // A file holding a secret (a token, a password): an absolute path or "credential:NAME", like
    // file_or_credential(), but a value that is neither is refused without being quoted: it may
    // be the secret itself. `what` names the secret in the hint: "the token".
    std::optional<std::filesystem::path> secret_file(const YAML::Node& node, const std::string& path, std::string_view what);

    // An absolute path short enough for a Unix socket address.
    std::optional<std::filesystem::path> socket_path(const YAML::Node& node, const std::string& path);

    // A file mode written in octal ("0660"); warns when the owner cannot read and write.
    std::optional<unsigned> file_mode(const YAML::Node& node, const std::string& path);

    // A socket's "mode" and "group" keys of section `section`, into `mode` and `group` when written.
    void socket_access(const fields& f, const std::string& section, unsigned& mode, std::string& group);
    // session_expiry, session_queue and max_sessions of a front end's section (mqtt, ipc).
    void parse_sessions(const fields& f, const std::string& section, session_limits& s);

    // The name of a configured Thing; reports an unknown one with the closest configured name.
    std::optional<std::string> thing_name(const YAML::Node& node, const std::string& path,
                                          const std::vector<thing>& things);

    std::vector<std::string> string_list(const YAML::Node& node, const std::string& path, std::string_view example);

    // A grant filter: ${...} variables must be known and closed; with them replaced it must be a
    // valid MQTT topic filter.
    std::vector<std::string> filter_list(const YAML::Node& node, const std::string& path);

    bool check_filter(const YAML::Node& node, const std::string& path, const std::string& filter);

    // Whether `text` uses no variable but ${thing} (a Thing's own settings know no other).
    [[nodiscard]] static bool only_thing_variable(std::string_view text);

    configuration parse_root(const YAML::Node& root);

private:
    thing parse_thing(const YAML::Node& node, const std::string& path);
    void parse_limits(const YAML::Node& node, const std::string& path, thing& t);
    // coverage of a Thing's keys `f` (parse_coverage.cpp), after its local_topics and limits.
    void parse_coverage(const fields& f, const std::string& path, thing& t);
    // proxy, proxy_credentials and proxy_ca of a Thing's keys `f` (parse_proxy.cpp).
    void parse_proxy(const fields& f, const std::string& path, thing& t);
    // Warns when an alpn written for a custom authorizer on port 443 lacks "mqtt".
    void check_custom_authorizer_alpn(const YAML::Node& node, const std::string& path, const thing& t);
    // auth, region, aws_credentials and custom_authorizer of a Thing's keys `f` (parse_auth.cpp).
    void parse_auth(const fields& f, const std::string& path, thing& t);
    // ca, cert, key, key_pin, pkcs12 and pkcs12_password of a Thing's keys `f`
    // (parse_credentials.cpp); `certificate_optional`: the Thing may go without a client certificate.
    void parse_credentials(const fields& f, const std::string& path, thing& t, bool certificate_optional);
    // custom_authorizer, given the Thing's `auth` key (null when not written) and whether its
    // value was refused.
    void parse_custom_authorizer(const fields& f, const std::string& path, thing& t, const field* auth,
                                 bool auth_written_wrong);
    // provisioning and rotation of a Thing's keys `f` (parse_identity.cpp), after its cert and key.
    void parse_identity(const fields& f, const std::string& path, thing& t);
    // services of a Thing's keys `f` (parse_services.cpp).
    void parse_services(const fields& f, const std::string& path, thing& t);
    // jobs of a Thing's keys `f` (parse_jobs.cpp).
    void parse_jobs(const fields& f, const std::string& path, thing& t);
    void parse_parameters(const YAML::Node& node, const std::string& path, const thing& t, enrollment_settings& e);
    void parse_enrollment(const fields& f, const std::string& path, const thing& t, enrollment_settings& e);
    std::optional<aws_credential_source> parse_aws_source(const YAML::Node& node, const std::string& path);
    std::optional<aws_credential_source> parse_credentials_provider(const YAML::Node& node, const std::string& path);
    app_rule parse_app(const YAML::Node& node, const std::string& path, const std::vector<thing>& things);
    void parse_ipc(const YAML::Node& node, ipc_settings& s);
    // After things: and ipc: (its defaults follow them); `node` may be null (no mqtt: section),
    // `ipc` is the ipc: section's node (null when not written).
    void parse_mqtt(const YAML::Node& node, const YAML::Node& ipc, configuration& c);
    void parse_mqtt_tcp(const YAML::Node& node, mqtt_settings& s);
    void parse_spool(const YAML::Node& node, spool_settings& s);
    void parse_log(const YAML::Node& node, log_settings& s);

    std::string file_;
};

// The metrics: section (parse_metrics.cpp), after ipc: (its defaults follow it); `node` may be null.
void parse_metrics(parser& p, const YAML::Node& node, configuration& c);

}  // namespace thingmux::config::detail
