#include "daemon/identity/thing_identity.hpp"

#include "common/fleet_provisioning.hpp"
#include "common/printable.hpp"
#include "common/regular_file.hpp"
#include "common/utc_time.hpp"
#include "daemon/logging.hpp"

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>

namespace thingmux::identity {
namespace {

using namespace std::chrono_literals;
using sys_clock = std::chrono::system_clock;

// A rotation that failed is tried again after this (doubling, up to the cap), provisioning too.
constexpr std::chrono::seconds first_retry{5};
constexpr std::chrono::seconds transient_cap{10min};
constexpr std::chrono::seconds refused_retry{30min};  // AWS said no: a change on its side is needed
// Expiry is looked at again at least this often (the system clock may be set meanwhile).
constexpr std::chrono::hours recheck{24};
constexpr std::array<int, 3> warning_days{30, 7, 1};

// After the `failures`-th failure in a row (1 or more): first_retry, doubling up to the cap; or
// refused_retry when AWS IoT refused.
std::chrono::seconds retry_delay(unsigned failures, bool retry_can_help) {
    if (!retry_can_help) return refused_retry;
    return std::min(transient_cap, first_retry * (1U << std::min(failures - 1, 8U)));
}

bool is_file(const std::filesystem::path& p) {
    const auto s = p.string();
    return !s.empty() && !s.starts_with("pkcs11:");
}

key_type key_type_of(config::generated_key k) {
    switch (k) {
        case config::generated_key::rsa_2048: return key_type::rsa_2048;
        case config::generated_key::tpm2_ec_p256: return key_type::tpm2_ec_p256;
        case config::generated_key::ec_p256: break;
    }
    return key_type::ec_p256;
}

// What the rotation's local session may do: the requests of CreateCertificateFromCsr and
// RegisterThing, and their answers (as the Thing's IoT policy must allow them).
config::grants enrollment_grants(const std::string& template_name) {
    namespace fp = aws::fleet_provisioning;
    config::grants g;
    g.rules = {"thingmuxd identity service"};
    const auto create = fp::create_certificate_topics();
    g.publish = {create.request};
    g.subscribe = {create.accepted, create.rejected};
    if (!template_name.empty()) {
        const auto reg = fp::register_thing_topics(template_name);
        g.publish.push_back(reg.request);
        g.subscribe.push_back(reg.accepted);
        g.subscribe.push_back(reg.rejected);
    }
    g.receive = g.subscribe;
    return g;
}


}  // namespace

thing_identity::thing_identity(boost::asio::io_context& io, config::thing settings, uplink::uplink_config link,
                               std::shared_ptr<thing::pipeline> pipe, hooks h)
    : io_(io), settings_(std::move(settings)), link_(std::move(link)), pipe_(std::move(pipe)), hooks_(std::move(h)),
      retry_timer_(io), rotation_timer_(io) {}

thing_identity::~thing_identity() {
    if (rotation_channel_) rotation_channel_->close();
}

bool thing_identity::start() {
    const identity_paths paths{config::resolve_file(settings_.cert), config::resolve_file(settings_.key),
                               link_.tls.tpm2_tcti};
    if ((settings_.provisioning || settings_.rotation) && is_file(paths.cert) && is_file(paths.key)) {
        // Before anything reads the files: a commit a power cut interrupted is finished or undone.
        if (auto r = recover(paths); !r)
            spdlog::error("thing {}: {}", settings_.name, r.error().message);
        else if (r->action != recovery::nothing_pending)
            spdlog::warn("thing {}: {}", settings_.name, r->detail);
    }
    std::error_code ignored;
    if (settings_.provisioning && !std::filesystem::exists(paths.cert, ignored)) {
        provision();
        return false;
    }
    inspect();
    return true;
}

void thing_identity::reconfigure(config::thing settings, uplink::uplink_config link) {
    settings_ = std::move(settings);
    link_ = std::move(link);
    if (!claim_) inspect();
}

enrollment_options thing_identity::options_for(const config::enrollment_settings& e, enrollment_purpose purpose) const {
    enrollment_options o;
    o.paths = {config::resolve_file(settings_.cert), config::resolve_file(settings_.key), link_.tls.tpm2_tcti};
    o.common_name = settings_.name;
    o.key = key_type_of(e.key_type);
    o.request.purpose = purpose;
    o.request.template_name = e.template_name;
    for (const auto& [k, v] : e.parameters) o.request.parameters.emplace(k, v);
    o.request.answer_timeout = std::chrono::duration_cast<std::chrono::seconds>(e.timeout);
    o.expected_thing = settings_.name;
    return o;
}

// ---- provisioning ----------------------------------------------------------------------------

void thing_identity::provision() {
    const auto& p = *settings_.provisioning;
    status_.state = "provisioning";
    status_.progress = "connecting with the claim certificate " + p.claim_cert.string();
    auto cfg = link_;
    cfg.tls.cert_file = config::resolve_file(p.claim_cert);
    cfg.tls.key_file = config::resolve_file(p.claim_key);
    // Nothing of this connection is worth keeping at the broker.
    cfg.session.clean_start = true;
    cfg.session.session_expiry = 0;
    claim_ = uplink::uplink::create(io_, std::move(cfg));
    claim_channel_ = std::make_unique<uplink_channel>(claim_);
    claim_->on_message([this](const mqtt::publish& m, std::optional<mqtt::inbound_ticket> ticket) {
        if (runner_) runner_->on_message(m.topic, m.payload);
        if (ticket && claim_) claim_->acknowledge(*ticket);
    });
    claim_->on_state([this](const uplink::state_event& ev) { on_claim_state(ev); });
    spdlog::info("thing {}: no certificate at {} yet: provisioning it with template {} (claim certificate {})",
                 settings_.name, settings_.cert.string(), p.template_name, p.claim_cert.string());
    hooks_.show_state({.state = uplink::link_state::connecting, .reason = "provisioning: " + status_.progress});
    claim_->start();
}

void thing_identity::on_claim_state(const uplink::state_event& ev) {
    if (stopping_) return;
    if (ev.state == uplink::link_state::connected) {
        if (runner_ || retry_timer_.expiry() > std::chrono::steady_clock::now()) return;
        const auto& p = *settings_.provisioning;
        status_.progress = "asking AWS IoT for a certificate and to register the Thing with template " + p.template_name;
        hooks_.show_state({.state = uplink::link_state::connecting, .reason = "provisioning: " + status_.progress});
        runner_ = enrollment_runner::create(io_.get_executor(), *claim_channel_,
                                            options_for(p, enrollment_purpose::provisioning),
                                            [this](enrollment_outcome o) { on_provisioned(std::move(o)); });
        runner_->start();
        return;
    }
    if (ev.state == uplink::link_state::backing_off || ev.state == uplink::link_state::failed) {
        auto shown = ev;
        shown.reason = "provisioning: the claim connection: " + ev.reason;
        hooks_.show_state(shown);
        if (runner_) runner_->stop("the claim connection was lost");
    }
}

void thing_identity::on_provisioned(enrollment_outcome outcome) {
    // The runner called us: it goes once this returns.
    boost::asio::post(io_, [done = std::move(runner_)] {});
    if (!outcome) {
        const auto& e = outcome.error();
        ++failures_;
        status_.last_error = e.message;
        const auto delay = retry_delay(failures_, e.retry_can_help);
        spdlog::error("thing {}: provisioning failed: {}; trying again in {} s{}", settings_.name,
                      logging::escaped(e.message), delay.count(),
                      e.retry_can_help ? "" : " (AWS IoT refused: the template, its parameters or the claim's policy need a change)");
        hooks_.show_state({.state = e.retry_can_help ? uplink::link_state::backing_off : uplink::link_state::failed,
                           .reason = "provisioning failed: " + e.message,
                           .fatal = !e.retry_can_help,
                           .retry_in = std::chrono::duration_cast<std::chrono::milliseconds>(delay)});
        retry_later(delay, [this] {
            if (claim_ && claim_->state() == uplink::link_state::connected)
                on_claim_state({.state = uplink::link_state::connected});
        });
        return;
    }
    failures_ = 0;
    status_.last_error.clear();
    status_.progress.clear();
    spdlog::info("thing {}: provisioned: certificate {} written to {} with its key {}{}", settings_.name,
                 outcome->certificate_id, settings_.cert.string(), settings_.key.string(),
                 outcome->thing_name.empty() ? "" : "; AWS IoT registered Thing " + text::printable(outcome->thing_name));
    inspect();
    // The claim connection ends before the Thing's own connection starts: they may share a client ID.
    auto claim = std::move(claim_);
    claim_channel_.reset();
    claim->on_message({});
    claim->on_state({});
    claim->stop([this, claim] {
        if (!stopping_) hooks_.provisioned();
    });
}

// ---- rotation ----------------------------------------------------------------------------------

void thing_identity::on_link(const uplink::state_event& ev) {
    link_up_ = ev.state == uplink::link_state::connected;
    if (link_up_ && rotation_due_ && !runner_) start_rotation({});
}

void thing_identity::rotate(rotate_done done) {
    if (claim_) return done("the Thing is being provisioned; it has no certificate to rotate yet", {});
    if (!settings_.rotation)
        return done("rotation is not configured for this Thing: add things[].rotation with the template that activates "
                    "the new certificate (docs/identity.md)", {});
    if (!is_file(settings_.cert) || !is_file(settings_.key) ||
        settings_.cert.string().starts_with(config::credential_prefix) ||
        settings_.key.string().starts_with(config::credential_prefix))
        return done("cert and key must be files thingmuxd may write to rotate them (docs/identity.md)", {});
    if (settings_.auth != config::auth_method::x509)
        return done("the Thing does not log in with its certificate (auth: " + config::describe_auth(settings_) + ")", {});
    if (runner_) {
        waiting_.push_back(std::move(done));
        return;
    }
    if (!online()) return done("the Thing is not connected: a rotation goes over its own connection; try again once it is", {});
    start_rotation(std::move(done));
}

void thing_identity::start_rotation(rotate_done done) {
    rotation_due_ = false;
    if (done) waiting_.push_back(std::move(done));
    const auto& e = *settings_.rotation;
    status_.state = "rotating";
    status_.progress = "asking AWS IoT for a certificate for a new key, then RegisterThing with template " + e.template_name;
    spdlog::info("thing {}: rotating its certificate: {}", settings_.name, status_.progress);
    rotation_channel_ = std::make_shared<pipeline_channel>(
        pipe_, hooks_.new_flow(), settings_.name, enrollment_grants(e.template_name),
        [this](const std::string& topic, const std::string& payload) {
            if (runner_) runner_->on_message(topic, payload);
        });
    runner_ = enrollment_runner::create(io_.get_executor(), *rotation_channel_, options_for(e, enrollment_purpose::rotation),
                                        [this](enrollment_outcome o) { on_rotated(std::move(o)); });
    runner_->start();
}

void thing_identity::on_rotated(enrollment_outcome outcome) {
    auto channel = std::move(rotation_channel_);
    channel->close();
    boost::asio::post(io_, [done = std::move(runner_), channel = std::move(channel)] {});
    status_.progress.clear();
    auto waiting = std::exchange(waiting_, {});
    if (!outcome) {
        const auto& e = outcome.error();
        ++failures_;
        status_.last_error = e.message;
        // The back-off is armed before inspect(): a rotation that is due would otherwise start
        // again at once, and fail again, as fast as AWS IoT answers.
        if (settings_.rotation && !stopping_)
            retry_later(retry_delay(failures_, e.retry_can_help), [this] { schedule_rotation(); });
        inspect();  // back to "installed", the old pair
        spdlog::error("thing {}: certificate rotation failed, the current certificate stays: {}", settings_.name,
                      logging::escaped(e.message));
        for (auto& w : waiting) w(e.message, {});
        return;
    }
    failures_ = 0;
    status_.last_error.clear();
    if (auto issued = inspect_certificate(outcome->certificate_pem)) rotated_to_ = issued->sha256_fingerprint;
    short_lived_warned_ = false;
    spdlog::info("thing {}: certificate rotated: certificate {} and a new key written to {} and {}; reconnecting with them",
                 settings_.name, outcome->certificate_id, settings_.cert.string(), settings_.key.string());
    inspect();
    hooks_.rotated("the certificate was rotated");
    for (auto& w : waiting) w({}, outcome->certificate_id);
}

// ---- expiry -------------------------------------------------------------------------------------

void thing_identity::inspect() {
    if (!runner_) status_.state = "unknown";
    const auto cert = config::resolve_file(settings_.cert);
    if (!is_file(cert)) return;
    auto bytes = files::read_regular(cert, files::max_credential_bytes);
    if (!bytes.ok()) return;
    auto info = inspect_certificate(bytes.bytes);
    if (!info) return;
    if (!runner_) status_.state = "installed";
    status_.not_after = info->not_after;
    status_.certificate_id = info->sha256_fingerprint;
    if (warned_for_ != info->sha256_fingerprint) {
        warned_for_ = info->sha256_fingerprint;
        warned_days_ = -1;
    }
    const auto left = info->not_after - sys_clock::now();
    const auto days = std::chrono::duration_cast<std::chrono::hours>(left).count() / 24;
    int level = -1;
    if (left <= sys_clock::duration::zero()) {
        level = 0;
    } else {
        for (const int d : warning_days)
            if (left <= std::chrono::hours(24 * d)) level = d;
    }
    if (level >= 0 && (warned_days_ < 0 || level < warned_days_)) {
        warned_days_ = level;
        if (level == 0)
            spdlog::error("thing {}: its certificate {} expired on {}: the broker will refuse it{}", settings_.name,
                          settings_.cert.string(), utc_text(info->not_after, utc_format::seconds),
                          settings_.provisioning ? "; remove it to provision the Thing again" : "");
        else
            spdlog::warn("thing {}: its certificate {} expires on {} ({} days left){}", settings_.name,
                         settings_.cert.string(), utc_text(info->not_after, utc_format::seconds), days,
                         settings_.rotation ? "; rotation is configured" : "; rotate it (thingmuxctl rotate-certificate) or install a new one");
    }
    schedule_rotation();
}

void thing_identity::schedule_rotation() {
    if (stopping_ || !status_.not_after) return;
    const auto now = sys_clock::now();
    auto wake = now + recheck;
    if (settings_.rotation) {
        const auto due = *status_.not_after - settings_.rotation->before_expiry;
        if (due > now) {
            wake = std::min(wake, due);
        } else if (status_.certificate_id == rotated_to_) {
            // The certificate a rotation just installed is due already: AWS IoT (or the CA behind
            // it) issues certificates valid for less than before_expiry. Rotating again would only
            // repeat that, back to back.
            if (std::exchange(short_lived_warned_, true) == false)
                spdlog::error("thing {}: the certificate rotation installed expires on {}, within rotation.before_expiry "
                              "({} days): not rotating it again automatically; lower before_expiry below the "
                              "certificates' validity",
                              settings_.name, utc_text(*status_.not_after, utc_format::seconds),
                              std::chrono::duration_cast<std::chrono::hours>(settings_.rotation->before_expiry).count() / 24);
        } else if (retry_timer_.expiry() <= std::chrono::steady_clock::now()) {
            if (!runner_) {
                rotation_due_ = true;
                if (online()) start_rotation({});
            }
        }
        // else: due, but a failed attempt's back-off runs; its timer comes back here (waking at
        // `due`, already past, would look every second).
    }
    for (const int d : warning_days) {
        const auto at = *status_.not_after - std::chrono::hours(24 * d);
        if (at > now) wake = std::min(wake, at);
    }
    rotation_timer_.expires_after(std::max(std::chrono::duration_cast<std::chrono::steady_clock::duration>(wake - now),
                                           std::chrono::steady_clock::duration(1s)));
    rotation_timer_.async_wait([this](boost::system::error_code ec) {
        if (!ec) inspect();
    });
}

void thing_identity::retry_later(std::chrono::seconds delay, std::function<void()> what) {
    retry_timer_.expires_after(delay);
    retry_timer_.async_wait([this, what = std::move(what)](boost::system::error_code ec) {
        if (!ec && !stopping_) what();
    });
}

void thing_identity::stop(std::function<void()> done) {
    stopping_ = true;
    retry_timer_.cancel();
    rotation_timer_.cancel();
    if (runner_) runner_->stop("thingmuxd is stopping");
    if (!claim_) {
        if (done) done();
        return;
    }
    auto claim = std::move(claim_);
    claim->on_message({});
    claim->on_state({});
    claim->stop([claim, done = std::move(done)] {
        if (done) done();
    });
}

}  // namespace thingmux::identity
