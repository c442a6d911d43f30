// thingmuxd's configuration (/etc/thingmux/thingmux.yaml, docs/config.md): YAML -> validated
// plain structs, with every problem reported at once with file:line:column and a hint.
//
// Pure: parse() touches no file system; load_file() reads the file, parses it and then runs
// check_files() (certificate/key files exist and are readable). Nothing here logs or throws.
//
// "unlimited": limits that are std::optional are unlimited when empty (nullopt). The defaults
// are AWS IoT Core's rules (docs/config.md, "things[].limits"); other brokers may raise or remove them.
#pragma once

#include "common/proxy_url.hpp"
#include "config/diagnostic.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace thingmux::config {

using duration = std::chrono::milliseconds;

// Where something was written in the file (1-based; 0 = not written, a default).
struct source_location {
    int line = 0;
    int column = 0;
    friend bool operator==(const source_location&, const source_location&) = default;
};

enum class protocol_version : std::uint8_t { mqtt5, mqtt311 };
// How MQTT travels to the endpoint: directly over TLS (port 8883, or 443 with ALPN), or in
// WebSocket messages over TLS (wss://ENDPOINT/mqtt, port 443).
enum class transport_mode : std::uint8_t { mqtt, websocket };
enum class qos2_policy : std::uint8_t { refuse, downgrade };
enum class retain_policy : std::uint8_t { allow, refuse };
// How many times the broker sends one message to a session whose subscriptions overlap on its
// topic: once per matching subscription (mosquitto 2, EMQX), or once.
enum class overlap_copies : std::uint8_t { per_subscription, one };
enum class spool_overflow : std::uint8_t { reject, drop_oldest_qos0 };
enum class offline_qos0 : std::uint8_t { drop, queue };
enum class log_level : std::uint8_t { trace, debug, info, warn, error };
enum class log_target : std::uint8_t { automatic, journal, stderr_stream };

[[nodiscard]] const char* to_string(protocol_version v) noexcept;
[[nodiscard]] const char* to_string(transport_mode v) noexcept;  // "mqtt", "websocket"
[[nodiscard]] const char* to_string(qos2_policy v) noexcept;
[[nodiscard]] const char* to_string(retain_policy v) noexcept;
[[nodiscard]] const char* to_string(spool_overflow v) noexcept;
[[nodiscard]] const char* to_string(offline_qos0 v) noexcept;
[[nodiscard]] const char* to_string(log_level v) noexcept;
[[nodiscard]] const char* to_string(log_target v) noexcept;  // "auto", "journal", "stderr"

// Guardrails applied per Thing before anything goes upstream (defaults: AWS IoT Core).
struct thing_limits {
    std::optional<std::size_t> max_payload = 128 * 1024;        // bytes
    std::optional<std::size_t> max_topic_length = 256;          // bytes (UTF-8)
    std::optional<std::size_t> max_topic_levels = 8;            // slashes + 1
    qos2_policy qos2 = qos2_policy::refuse;
    retain_policy retain = retain_policy::allow;
    // The local retained-message cache (daemon/thing/retained_cache.hpp); 0 messages: none.
    std::size_t retained_messages = 1000;
    std::size_t retained_bytes = 1024 * 1024;  // topics + payloads
    std::optional<std::uint32_t> publishes_per_second = 100;    // per connection, shared by apps
    std::optional<std::uint64_t> bytes_per_second = 512 * 1024; // per connection, shared by apps
    std::optional<std::size_t> subscriptions = 50;              // distinct upstream filters
    std::optional<std::uint32_t> subscriptions_per_second = 50; // filters in SUBSCRIBE + UNSUBSCRIBE, shared by apps
    std::uint16_t inflight = 90;                                // own QoS 1 window (AWS allows 100)
    std::optional<std::size_t> filters_per_subscribe = 8;       // per SUBSCRIBE packet
    // The broker's packet limit where it does not announce one (MQTT 3.1.1); unset: CONNACK's.
    std::optional<std::size_t> max_packet;
    overlap_copies overlap = overlap_copies::per_subscription;  // copies the broker sends for overlapping filters
};

// How a Thing reaches its endpoint (docs/connecting.md): directly, through the HTTP proxy a URL
// names, or through the one the standard environment names (https_proxy, no_proxy).
enum class proxy_mode : std::uint8_t { direct, url, environment };

struct proxy_settings {
    proxy_mode mode = proxy_mode::direct;
    proxy::url url;  // mode url: the proxy, with the credentials written in the URL, if any
    // A file holding "user:password" for Basic authentication, or "credential:NAME"; empty: none
    // (or those of the URL). Read at every connection attempt, like the certificate files.
    std::filesystem::path credentials;
    // https:// proxies: the CA file that must have signed the proxy's certificate, or
    // "credential:NAME"; empty: the system's CA store.
    std::filesystem::path ca;
};

// How a Thing proves its identity to the broker (docs/connecting.md): its X.509 client certificate,
// SigV4-signed WebSocket URLs, or an AWS IoT custom authorizer.
enum class auth_method : std::uint8_t { x509, sigv4, custom_authorizer };
[[nodiscard]] const char* to_string(auth_method v) noexcept;  // "x509", "sigv4", "custom-authorizer"

// auth: custom-authorizer (docs/config.md "things[].custom_authorizer"). The secrets are files
// (or "credential:NAME"), read at every connection attempt; never written in the YAML itself.
struct custom_authorizer_settings {
    std::string name;            // x-amz-customauthorizer-name
    std::string token_key_name;  // the query parameter the token goes in; empty: no token
    std::filesystem::path token;      // empty: none
    std::filesystem::path signature;  // the token's signature (signing authorizers); empty: none
    std::string username;             // the MQTT user name before '?'; empty: none
    std::filesystem::path password;   // the MQTT password; empty: none
};

// How a Thing gets a new certificate for a key it generates (docs/identity.md): AWS IoT's
// CreateCertificateFromCsr, then, with a template, RegisterThing (fleet provisioning MQTT API).
// tpm2_ec_p256: generated inside the TPM (tpm2_tcti:), `key:` then holds its TSS2 PEM.
enum class generated_key { ec_p256, rsa_2048, tpm2_ec_p256 };
[[nodiscard]] const char* to_string(generated_key v) noexcept;  // "ec-p256", "rsa-2048", "tpm2-ec-p256"

struct enrollment_settings {
    std::string template_name;  // RegisterThing's provisioning template (required: it activates the certificate)
    std::map<std::string, std::string, std::less<>> parameters;  // the template's parameters, ${thing} expanded
    generated_key key_type = generated_key::ec_p256;
    std::chrono::milliseconds timeout{30'000};  // for each answer of AWS IoT
};

// provisioning: the Thing starts with a claim certificate and no certificate of its own; cert and
// key name where the provisioned identity is written.
struct provisioning_settings : enrollment_settings {
    std::filesystem::path claim_cert;
    std::filesystem::path claim_key;
};

// rotation: a new key and certificate before the current certificate expires (or on request).
struct rotation_settings : enrollment_settings {
    std::chrono::seconds before_expiry{std::chrono::hours{24 * 30}};
};

// services: how the Thing's pipeline routes AWS IoT's Device Shadow and Jobs requests and their
// answers (docs/services.md).
struct service_settings {
    duration request_timeout{10'000};       // a request AWS has not answered by then gets a 504 rejected
    std::size_t max_pending_per_session = 100;  // requests awaiting their answer, per local session
    bool shadow_cache = false;              // keep the last document per shadow for gets while offline
};

// jobs: thingmuxd takes the Thing's AWS IoT jobs and hands each to the app registered for its
// operation (docs/services.md).
enum class unhandled_jobs { reject, leave };
[[nodiscard]] const char* to_string(unhandled_jobs v) noexcept;  // "reject", "leave"

struct jobs_settings {
    // A job no app handles: REJECTED with reject_reason, or left IN_PROGRESS for another agent.
    unhandled_jobs unhandled = unhandled_jobs::reject;
    // statusDetails.reason of a rejected job (at most 1024 bytes); ${operation} and ${job} are
    // expanded when the job is rejected.
    std::string reject_reason = "no application on this device handles operation ${operation}";
    // How long after the service started a job waits for an app of its operation (apps start in
    // any order) before it counts as unhandled.
    duration handler_wait{60'000};
};

// One entry of a Thing's aws_credentials (auth: sigv4): where AWS credentials come from. The
// entries are tried in the order written, at each connection attempt; the first that gives
// credentials is used. Secrets are never written in the configuration itself.
struct aws_credential_source {
    enum class kind : std::uint8_t {
        file,                     // an INI file like ~/.aws/credentials (`file`, section `profile`)
        environment,              // AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN of thingmuxd
        profile,                  // section `profile` of thingmuxd's user's shared credentials file
        iot_credentials_provider  // the Thing's certificate exchanged for temporary credentials
    };
    kind type = kind::environment;
    std::filesystem::path file;  // file: a path or "credential:NAME"
    std::string profile;         // file: the section ("default" when not written); profile: its name
    // iot_credentials_provider: PREFIX.credentials.iot.REGION.amazonaws.com, the role alias, and
    // the CA file of the provider's certificate (empty: the Thing's ca).
    std::string endpoint;
    std::uint16_t port = 443;  // written as endpoint: HOST:PORT (a stand-in of the provider)
    std::string role_alias;
    std::filesystem::path ca;
    source_location where;  // the list entry
};

[[nodiscard]] const char* to_string(aws_credential_source::kind v) noexcept;  // "file", "env", "profile", ...

struct thing {
    std::string name;                  // AWS IoT Thing name
    std::string endpoint;              // host name or IP address
    transport_mode transport = transport_mode::mqtt;
    std::uint16_t port = 8883;         // resolved: 443 with transport: websocket when not written
    std::string client_id;             // resolved: the Thing name when not written
    protocol_version protocol = protocol_version::mqtt5;
    std::filesystem::path ca;
    // empty (with key) only with auth custom-authorizer or sigv4 (without the credentials
    // provider): no client certificate
    // cert: a PEM file, or a "pkcs11:" URI of the certificate in the key's token. key: a PEM file,
    // a TPM 2.0 key (TSS2 PEM file), or a "pkcs11:" URI (docs/identity.md).
    std::filesystem::path cert;
    std::filesystem::path key;
    std::filesystem::path key_pin;  // the token's PIN (file or credential:NAME) when the URI gives none
    // A PKCS#12 bundle instead of cert and key, and the file holding its password (empty: none).
    std::filesystem::path pkcs12;
    std::filesystem::path pkcs12_password;
    // resolved when not written: on port 443 with transport mqtt {"x-amzn-mqtt-ca"}, or {"mqtt"}
    // with auth custom-authorizer; none for websocket (AWS IoT Core needs no ALPN for wss on 443)
    std::vector<std::string> alpn;
    auth_method auth = auth_method::x509;
    custom_authorizer_settings custom_authorizer;
    // Topic filters routed between the Thing's local sessions only, never sent to the broker
    // (${thing} expanded).
    std::vector<std::string> local_topics;
    // Upstream coverage filters (${thing} expanded; docs/config.md things[].coverage): every local
    // subscription one of them covers is served by that one upstream subscription and filtered
    // locally. None is a shared subscription, within local_topics, or written twice.
    std::vector<std::string> coverage;
    std::chrono::seconds keep_alive{60};                    // 0 = off (MQTT), else 1..65535 s
    std::optional<std::chrono::seconds> session_expiry = std::chrono::seconds{3600};  // nullopt: never expires
    duration backoff_base{1000};
    duration backoff_cap{120'000};
    duration connect_timeout{10'000};  // TCP + proxy + TLS handshake
    proxy_settings proxy;
    std::string region;  // auth sigv4: as written; empty: the endpoint's (common/aws_region.hpp)
    std::vector<aws_credential_source> aws_credentials;  // auth sigv4: at least one
    std::optional<provisioning_settings> provisioning;  // none: the certificate is installed by other means
    std::optional<rotation_settings> rotation;          // none: no rotation (not even on request)
    std::optional<jobs_settings> jobs;  // none: thingmuxd takes no jobs (apps may use the Jobs topics themselves)
    thing_limits limits;
    service_settings services;
    source_location where;             // the list entry ("- name: ...")
    // Location of each key written in the file ("cert", "limits.max_payload", ...), for messages
    // about a field found later (e.g. a certificate the broker rejects).
    std::map<std::string, source_location, std::less<>> fields;
};

// The Thing's way of authenticating as status shows it: "x509", "sigv4", "custom-authorizer NAME".
[[nodiscard]] std::string describe_auth(const thing& t);

// Who a rule applies to: every key that is set must match the peer; at least one is set.
struct peer_match {
    std::optional<std::string> unit;   // systemd unit name, glob (*, ?, [...])
    std::optional<std::string> user;   // user name
    std::optional<uid_t> uid;
    std::optional<std::string> group;  // group name, primary or supplementary
    std::optional<gid_t> gid;          // primary or supplementary
    std::optional<std::string> mqtt_user;  // an MQTT client that authenticated with this name (mqtt.passwords)
};

struct app_rule {
    std::string name;
    peer_match match;
    std::vector<std::string> things;     // empty: every Thing
    std::vector<std::string> publish;    // filters, may use ${thing} ${unit} ${user} ${uid}
    std::vector<std::string> subscribe;
    std::vector<std::string> receive;    // resolved: a copy of subscribe when not written
    // Management over the IPC socket (list every client, reload): docs/config.md "admin".
    // Daemon-wide: `things` does not narrow it.
    bool admin = false;
    source_location where;
};

// A front end's sessions that outlive their connections (mqtt: and ipc:, docs/config.md).
struct session_limits {
    // Kept at most this long after their connection ended, with at most `queue` bytes (topic +
    // payload) of QoS 1 messages waiting for the client.
    std::chrono::seconds expiry{86'400};
    std::size_t queue = 1024 * 1024;
    // Sessions kept beyond their connection, all clients of the front end together (each up to
    // `queue` bytes, in memory and in the spool): past it, a new one lasts as long as its connection.
    std::size_t max = 256;
    // The same, of one owner (uid, and MQTT user where one was checked), so that one user's
    // runaway app cannot take every place.
    std::size_t max_per_uid = 64;
    friend bool operator==(const session_limits&, const session_limits&) = default;
};

struct ipc_settings {
    std::filesystem::path socket = "/run/thingmux/thingmux.sock";
    unsigned mode = 0660;
    std::string group = "thingmux";      // empty: leave the group as created
    std::size_t max_clients = 1024;
    std::size_t max_clients_per_uid = 256;  // so one user's runaway app cannot take every slot
    std::size_t client_queue = 8 * 1024 * 1024;  // bytes queued for one client
    std::size_t client_queue_total = 64 * 1024 * 1024;  // bytes queued for all clients together
    std::size_t client_subscriptions = 1000;
    std::size_t client_inflight = 1000;  // publishes of one client awaiting their result
    duration hello_timeout{10'000};
    session_limits sessions;  // of apps whose hello names a session (IPC-43)
};

// A loopback address of the MQTT face's TCP listener: "127.0.0.1:1883", "[::1]:1883".
struct tcp_address {
    std::string host;  // the address as written, without brackets: "127.0.0.1", "::1"
    std::uint16_t port = 0;
    [[nodiscard]] std::string to_string() const;  // "127.0.0.1:1883", "[::1]:1883"
};

// The local MQTT broker face (docs/config.md "mqtt", docs/local-mqtt.md): unmodified MQTT 3.1.1
// and 5 clients on a Unix socket, and optionally on loopback TCP.
struct mqtt_settings {
    bool enabled = true;
    std::filesystem::path socket =
        "/run/thingmux/mqtt.sock";   // resolved: mqtt.sock next to ipc.socket when not written
    unsigned mode = 0660;            // resolved: ipc.mode when not written
    std::string group = "thingmux";  // resolved: ipc.group when not written; empty: leave the group as created
    std::size_t max_clients = 1024;
    std::size_t client_queue = 8 * 1024 * 1024;  // bytes queued for one client
    std::size_t max_packet = 266240;             // largest packet a client may send, bytes
    std::uint16_t receive_maximum = 100;         // QoS 1/2 publishes of one client awaiting their answer
    std::uint16_t max_inflight = 100;            // QoS 1 deliveries to one client awaiting its PUBACK
    std::uint16_t topic_aliases = 32;            // topic aliases a client may use toward thingmuxd
    std::chrono::seconds max_keep_alive{0};      // 0: the client chooses
    duration connect_timeout{10'000};            // from accept to CONNECT
    std::string thing;                           // resolved: the first Thing when not written
    session_limits sessions;  // of clients with Clean Start 0 (docs/local-mqtt.md, Sessions)
    std::vector<tcp_address> tcp;     // loopback TCP listeners; empty: none
    std::filesystem::path passwords;  // mosquitto_passwd file; empty: no username/password
    source_location passwords_where;  // where mqtt.passwords is written, for messages about the file
};

// The metrics endpoint (docs/metrics.md): OpenMetrics over HTTP/1.1 on a Unix socket, and
// optionally on one TCP address. Listener changes take effect at the next start.
struct metrics_settings {
    bool enabled = true;
    std::filesystem::path socket = "/run/thingmux/metrics.sock";  // resolved: metrics.sock next to ipc.socket when not written
    unsigned mode = 0660;            // resolved: ipc.mode when not written
    std::string group = "thingmux";  // resolved: ipc.group when not written; empty: leave the group as created
    std::optional<tcp_address> listen;  // TCP listener; absent: none
    bool allow_remote = false;          // listen may name a non-loopback address
};

struct spool_settings {
    std::filesystem::path path = "/var/lib/thingmux/spool.db";
    std::optional<std::uint64_t> max_bytes = 64 * 1024 * 1024;
    std::optional<std::uint64_t> max_messages = 100'000;
    spool_overflow overflow = spool_overflow::reject;
    offline_qos0 qos0 = offline_qos0::drop;
};

struct log_settings {
    log_level level = log_level::info;
    log_target target = log_target::automatic;
};

struct configuration {
    std::vector<thing> things;           // at least one; apps get the first by default
    std::vector<app_rule> apps;          // authorization rules; none = nobody may do anything
    ipc_settings ipc;
    mqtt_settings mqtt;
    spool_settings spool;
    log_settings log;
    metrics_settings metrics;
    // The tpm2 provider's TCTI for TPM keys, e.g. "swtpm:host=127.0.0.1,port=2321"; empty: the
    // provider's default (/dev/tpmrm0).
    std::string tpm2_tcti;

    [[nodiscard]] const thing* find_thing(std::string_view name) const noexcept;
};

struct load_result {
    std::optional<configuration> config;  // set only when there is no error (warnings allowed)
    std::vector<diagnostic> diagnostics;  // errors and warnings, in file order
    // parse(): what could be read despite errors (for load_file() to check its files as well, so
    // that one run reports every problem). Not a usable configuration.
    std::optional<configuration> partial;
    [[nodiscard]] bool ok() const noexcept { return config.has_value(); }
};

// Parses and validates YAML text; `file_name` only labels the diagnostics. No file system access.
// Never throws, whatever the input.
[[nodiscard]] load_result parse(std::string_view yaml_text, std::string file_name);

// Reads the file (at most 1 MiB), parse()s it, then check_files().
[[nodiscard]] load_result load_file(const std::filesystem::path& file);

// ca/cert/key, proxy_credentials, proxy_ca, the custom authorizer's token, signature and
// password, and the files of aws_credentials may be "credential:NAME": a systemd credential
// (LoadCredential=NAME:... in the unit).
inline constexpr std::string_view credential_prefix = "credential:";
// The file to open: "credential:NAME" -> $CREDENTIALS_DIRECTORY/NAME (empty when that variable
// is unset); any other path unchanged.
[[nodiscard]] std::filesystem::path resolve_file(const std::filesystem::path& p);

// Checks that each Thing's ca/cert/key (and proxy_credentials, proxy_ca, the custom authorizer's
// files, the files and CA of aws_credentials) is a readable regular file (as the calling process:
// run it with the daemon's credentials) and warns when a private key or another secret is
// readable by others. An aws_credentials file must also hold its profile; its problems are
// warnings when the Thing has another source to fall back on. Appends to `out`; positions come from
// thing::fields.
void check_files(const configuration& config, std::vector<diagnostic>& out, const std::string& file_name);

}  // namespace thingmux::config
