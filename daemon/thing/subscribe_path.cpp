// The subscribe path of a Thing's pipeline: checks, the reference-counted subscription table,
// the subscription shaper, and the broker's answers.
#include "common/topic.hpp"
#include "daemon/mqtt/topic.hpp"
#include "daemon/thing/outcome.hpp"
#include "daemon/thing/pipeline.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace thingmux::thing {

namespace {

// Subscription changes one session may have waiting for the Thing's subscription rate: a
// second's worth of the rate, and at least one full SUBSCRIBE packet (AWS IoT Core: 8 filters).
std::size_t subscription_backlog(std::uint32_t filters_per_second) { return std::max<std::size_t>(filters_per_second, 8); }

std::string n(std::size_t v) { return std::to_string(v); }

}  // namespace

std::optional<ipc::result> pipeline::check_filter(local_session& s, const std::string& subscription) {
    if (const char* problem = mqtt::topic_filter_problem(subscription))
        return fail(ipc::errc::invalid_filter, "filter '" + subscription + "' " + problem,
                    mqtt::reason::topic_filter_invalid);
    const auto& l = settings_.limits;
    const auto refuse = [&](ipc::errc code, std::string why, std::uint8_t reason) {
        ++shared_.counters.refused;
        return fail(code, std::move(why), reason);
    };
    // A shared subscription is checked as its filter: that is what the app rules grant, what goes
    // upstream and what the quotas count.
    const bool shared = topic::is_shared(subscription);
    const std::string filter(filter_of(subscription));
    if (shared && !s.takes_shared_subscriptions())
        return refuse(ipc::errc::invalid_filter,
                      "'" + subscription +
                          "' is a shared subscription, which thingmuxd offers on its local MQTT face only (this "
                          "client's messages are dispatched by topic, so a group's could not be told from its own)",
                      mqtt::reason::shared_subscriptions_not_supported);
    if (shared && l.max_topic_length) {
        // Peers choose share names too: each group keeps its name.
        const auto name = subscription.size() - filter.size() - topic::share_prefix.size() - 1;
        if (name > *l.max_topic_length)
            return refuse(ipc::errc::invalid_filter,
                          "share name is " + n(name) + " bytes, limit " + n(*l.max_topic_length) +
                              " (limits.max_topic_length)",
                          mqtt::reason::topic_filter_invalid);
    }
    if (l.max_topic_length && filter.size() > *l.max_topic_length)
        return refuse(ipc::errc::invalid_filter,
                      "filter is " + n(filter.size()) + " bytes, limit " + n(*l.max_topic_length) + " (limits.max_topic_length)",
                      mqtt::reason::topic_filter_invalid);
    if (l.max_topic_levels && topic::level_count(filter) > *l.max_topic_levels)
        return refuse(ipc::errc::invalid_filter,
                      "filter '" + filter + "' has " + n(topic::level_count(filter)) + " levels, limit " + n(*l.max_topic_levels) +
                          " (limits.max_topic_levels)",
                      mqtt::reason::topic_filter_invalid);
    if (!config::allowed(s.rights(), config::action::subscribe, filter)) return deny(s, config::refused::subscribe, filter);
    const auto flow = s.flow();
    const bool local = local_only(filter);
    const bool held = shared ? groups_.is_member(flow, subscription) : (local ? local_table_ : table_).holds(flow, filter);
    const auto holds = table_.filters_held(flow) + local_table_.filters_held(flow) + groups_.memberships(flow);
    if (!held && holds >= rules_.max_subscriptions)
        return refuse(ipc::errc::quota_exceeded,
                      "client holds " + n(holds) + " subscriptions, limit " + n(rules_.max_subscriptions) +
                          " (ipc.client_subscriptions)",
                      mqtt::reason::quota_exceeded);
    if (local) return std::nullopt;  // nothing goes upstream: no upstream quota or rate applies
    if (!held && !table_.fits(filter, l.subscriptions))
        return refuse(ipc::errc::quota_exceeded,
                      "Thing " + settings_.name + " already holds " + n(table_.upstream_count()) +
                          " subscriptions upstream, the connection's limit (limits.subscriptions; AWS IoT "
                          "Core allows 50): share a filter another app holds (or one it covers), or unsubscribe one",
                      mqtt::reason::quota_exceeded);
    // A filter nobody holds yet may need a SUBSCRIBE of its own (unless a held one covers it);
    // under a coverage filter that is upstream, or wanted there already, it never does.
    if (table_.holder_count(filter) == 0 && !table_.served_by_coverage(filter)) {
        if (auto refusal = check_subscription_rate(flow, filter)) {
            ++shared_.counters.refused;
            return refusal;
        }
    }
    return std::nullopt;
}

void pipeline::subscribe(const std::shared_ptr<local_session>& s, std::uint32_t request_id,
                         std::vector<ipc::subscription> filters, std::vector<subscription_options> options,
                         bool answer_at_registration) {
    auto req = std::make_shared<subscribe_request>();
    req->owner = s;
    req->request_id = request_id;
    req->results.resize(filters.size());
    req->remaining = filters.size();
    upstream_plan upstream;
    std::vector<std::pair<std::size_t, std::uint8_t>> unacknowledged;  // (index, QoS) waiting for a SUBACK
    for (std::size_t i = 0; i < filters.size(); ++i) {
        auto& f = filters[i];
        if (auto refusal = check_filter(*s, f.filter)) {
            req->results[i] = std::move(*refusal);
            --req->remaining;
            continue;
        }
        // The session never holds QoS 2; a QoS 2 request is granted QoS 1, as a broker would.
        const auto qos = static_cast<std::uint8_t>(std::min<unsigned>(f.max_qos, 1));
        const auto o = i < options.size() ? options[i] : subscription_options{};
        // A shared subscription's filter is held by its group, for all its members.
        const auto filter = filter_of(f.filter);
        const auto holder = topic::is_shared(f.filter) ? groups_.join(s->flow(), f.filter, qos).group : s->flow();
        const bool local = local_only(filter);
        // Retain Handling 1: retained messages only for a subscription the session did not hold.
        const bool retained = o.retain_handling == 0 ||
                              (o.retain_handling == 1 && !(local ? local_table_ : table_).holds(holder, filter));
        if (o.no_local) no_local_sessions_.insert(s->flow());
        (local ? local_table_ : table_).add(holder, filter, qos, o);
        if (!local) upstream.append(table_.plan(settings_.limits.subscriptions));
        if (retained) wants_retained(*req, i, s->flow(), f.filter);
        if (local) {
            req->results[i] = ok(qos);
            --req->remaining;
            continue;
        }
        if (const auto granted = table_.granted_qos(filter)) {
            req->results[i] = ok(std::min(*granted, qos));
            --req->remaining;
        } else {
            waiting_[f.filter].push_back({req, i, qos});
            unacknowledged.emplace_back(i, qos);
        }
    }
    if (answer_at_registration) {
        // IPC-61: registered now, deliveries from the SUBACK on; the final answer follows (IPC-62).
        auto registered = req->results;
        for (const auto& [i, qos] : unacknowledged) {
            registered[i] = ok(qos);
            registered[i].message = "registered; waiting for the broker's SUBACK";
        }
        s->subscribe_registered(request_id, std::move(registered));
    }
    if (req->remaining == 0) finish(*req);
    sync_upstream(s->flow(), std::move(upstream));
}

void pipeline::unsubscribe(const std::shared_ptr<local_session>& s, std::uint32_t request_id,
                           const std::vector<std::string>& filters) {
    std::vector<ipc::result> results;
    std::vector<waiter> unanswered;
    const auto flow = s->flow();
    for (const auto& f : filters) {
        if (topic::is_shared(f)) {
            const auto left = groups_.leave(flow, f);
            if (!left) {
                results.push_back(ok(mqtt::reason::no_subscription_existed));
                continue;
            }
            release_groups({*left});
        } else if (local_table_.remove(flow, f)) {
            results.push_back(ok(mqtt::reason::success));
            continue;
        } else if (!table_.holds(flow, f)) {
            results.push_back(ok(mqtt::reason::no_subscription_existed));
            continue;
        } else {
            table_.remove(flow, f);
        }
        if (auto w = waiting_.find(f); w != waiting_.end()) {
            std::erase_if(w->second, [&](waiter& x) {
                if (x.request->owner->flow() != flow) return false;
                unanswered.push_back(std::move(x));
                return true;
            });
            if (w->second.empty()) waiting_.erase(w);
        }
        results.push_back(ok(mqtt::reason::success));
    }
    s->unsubscribe_done(request_id, std::move(results));
    // Unsubscribed before an upstream filter served it: the request still gets its answer.
    for (auto& w : unanswered) answer(w, ok(w.requested_qos));
    sync_upstream(flow);
}

std::optional<ipc::result> pipeline::check_subscription_rate(session_id flow, const std::string& filter) const {
    const auto& l = settings_.limits;
    // Unlimited, nothing waits. A filter whose UNSUBSCRIBE waits is still held at the broker:
    // subscribing again only withdraws the UNSUBSCRIBE.
    if (!l.subscriptions_per_second || filters_.waiting(filter) == subscription_shaper::kind::unsubscribe)
        return std::nullopt;
    const auto rate = n(*l.subscriptions_per_second);
    if (const auto waiting = filters_.queued(flow); waiting >= subscription_backlog(*l.subscriptions_per_second)) {
        return fail(ipc::errc::rate_limited,
                    n(waiting) + " subscription changes of this client already wait for Thing " + settings_.name +
                        "'s subscription rate (limits.subscriptions_per_second: " + rate +
                        "), which all apps share: wait for the results of earlier subscribes before sending more",
                    mqtt::reason::quota_exceeded);
    }
    if (l.subscriptions && table_.upstream_count() + filters_.queued_unsubscribes() >= *l.subscriptions) {
        return fail(ipc::errc::rate_limited,
                    "Thing " + settings_.name + " still holds " + n(filters_.queued_unsubscribes()) +
                        " filter(s) upstream that no app holds any more, until their UNSUBSCRIBE gets its turn "
                        "(limits.subscriptions_per_second: " + rate + "); with them the connection's limit (limits.subscriptions: " +
                        n(*l.subscriptions) + ") is reached: try again shortly",
                    mqtt::reason::quota_exceeded);
    }
    return std::nullopt;
}

std::size_t pipeline::sync_upstream(session_id flow, upstream_plan first) {
    std::size_t released = 0;
    auto plan = std::move(first);
    for (;;) {
        plan.append(table_.plan(settings_.limits.subscriptions));
        released += plan.unsubscribe.size();
        send_plan(flow, std::move(plan));
        plan = {};
        // Requests whose filters an acknowledged upstream filter now serves.
        for (auto it = waiting_.begin(); it != waiting_.end();) {
            const auto granted = table_.granted_qos(filter_of(it->first));
            if (!granted) {
                ++it;
                continue;
            }
            auto waiters = std::move(it->second);
            it = waiting_.erase(it);
            for (auto& w : waiters) answer(w, ok(std::min(*granted, w.requested_qos)));
        }
        // Filters nothing serves or will serve: the broker refused them, or the quota is full.
        const auto lost = table_.unserved();
        if (lost.empty()) return released;
        for (const auto& u : lost) {
            const auto why = u.refused ? fail(ipc::errc::broker_refused,
                                              std::string("broker refused the subscription: ") + mqtt::reason_string(*u.refused),
                                              *u.refused)
                                       : fail(ipc::errc::quota_exceeded,
                                              "Thing " + settings_.name + " already holds " + n(table_.upstream_count()) +
                                                  " subscriptions upstream, the connection's limit (limits.subscriptions)",
                                              mqtt::reason::quota_exceeded);
            std::vector<waiter> waiters;
            const auto take_waiters = [&](std::string_view key) {
                if (auto w = waiting_.find(key); w != waiting_.end()) {
                    for (auto& x : w->second) waiters.push_back(std::move(x));
                    waiting_.erase(w);
                }
            };
            take_waiters(u.filter);
            // The sessions holding it: on their own, or as members of a group (which ends).
            std::vector<session_id> holders;
            for (const auto id : table_.holders(u.filter)) {
                table_.remove(id, u.filter);
                if (!share_groups::is_group(id)) {
                    holders.push_back(id);
                    continue;
                }
                if (const auto* g = groups_.find(id)) take_waiters(g->share);
                for (const auto member : groups_.dissolve(id)) holders.push_back(member);
            }
            // Holders answered earlier (served by a wider filter until now) are not waiting.
            const auto answered = static_cast<std::size_t>(std::count_if(holders.begin(), holders.end(), [&](session_id id) {
                return std::none_of(waiters.begin(), waiters.end(), [&](const waiter& w) { return w.request->owner->flow() == id; });
            }));
            if (answered > 0)
                spdlog::warn("thing {}: '{}' is no longer held upstream ({}); {} app(s) holding it no longer receive it",
                             settings_.name, logging::escaped(u.filter), logging::escaped(why.message), answered);
            for (auto& w : waiters) answer(w, why);
        }
    }
}

void pipeline::send_plan(session_id flow, upstream_plan plan) {
    // Queued in `flow`'s turn of the subscription shaper; release_subscription_changes() sends them. At most one
    // change per filter waits there: an UNSUBSCRIBE withdraws a SUBSCRIBE that has not gone out
    // (the broker never had the filter), a SUBSCRIBE replaces a waiting UNSUBSCRIBE.
    for (auto& s : plan.subscribe) {
        filters_.subscribe(flow, s.filter);
        subscribe_generations_.insert_or_assign(std::move(s.filter), s.generation);
    }
    // What these replace is unsubscribed only once they are acknowledged, so anything here is
    // already served by acknowledged filters: its order against the SUBSCRIBEs does not matter.
    for (const auto& f : plan.unsubscribe) {
        retained_recipients_.drop(f);
        if (!filters_.unsubscribe(flow, f)) subscribe_generations_.erase(f);
    }
    release_subscription_changes();
}

void pipeline::release_subscription_changes() {
    if (!releasing()) return;
    const auto now = clock_.now();
    std::vector<mqtt::subscription> subscribe;
    std::vector<std::string> filters;
    std::vector<std::uint64_t> generations;
    std::vector<std::string> unsubscribe;
    while (auto op = filters_.pop(now)) {
        if (op->what == subscription_shaper::kind::unsubscribe) {
            unsubscribe.push_back(std::move(op->filter));
            continue;
        }
        const auto it = subscribe_generations_.find(op->filter);
        if (it == subscribe_generations_.end()) continue;  // not expected: dropping a filter withdraws its SUBSCRIBE
        generations.push_back(it->second);
        subscribe_generations_.erase(it);
        retained_recipients_.sent(op->filter);
        filters.push_back(op->filter);
        subscribe.push_back({.filter = std::move(op->filter), .max_qos = mqtt::qos::at_least_once});
    }
    // One operation per filter waits at a time, so these lists never share a filter.
    if (!unsubscribe.empty()) up_.unsubscribe(std::move(unsubscribe));
    if (!subscribe.empty()) {
        up_.subscribe(std::move(subscribe), [weak = weak_from_this(), filters = std::move(filters),
                                             generations = std::move(generations)](const std::vector<std::uint8_t>& codes) {
            const auto self = weak.lock();
            if (!self) return;
            for (std::size_t k = 0; k < filters.size(); ++k)
                self->upstream_subscribed(filters[k], generations[k], k < codes.size() ? codes[k] : mqtt::reason::unspecified_error);
        });
    }
    schedule(now);
}

void pipeline::upstream_subscribed(const std::string& filter, std::uint64_t generation, std::uint8_t code) {
    const auto outcome = table_.subscribed(filter, generation, code);
    if (outcome == subscription_table::suback::stale) return;  // unsubscribed meanwhile
    if (outcome == subscription_table::suback::granted) retained_recipients_.granted(filter);
    if (outcome == subscription_table::suback::refused) {
        ++suback_failures_;
        retained_recipients_.drop(filter);
        spdlog::warn("thing {}: broker refused subscription to '{}': {}", settings_.name, logging::escaped(filter),
                     mqtt::reason_string(code));
    }
    sync_upstream(table_flow);
}

void pipeline::on_subscription_lost(const std::string& filter, std::uint8_t reason_code) {
    spdlog::warn("thing {}: broker refused re-subscribing '{}' after reconnecting: {}", settings_.name,
                 logging::escaped(filter), mqtt::reason_string(reason_code));
    ++suback_failures_;
    // What it served is served by others, or subscribed again on its own, or dropped (logged).
    table_.lost(filter, reason_code);
    retained_recipients_.drop(filter);
    sync_upstream(table_flow);
}

void pipeline::answer(waiter& w, ipc::result r) {
    auto& req = *w.request;
    req.results[w.index] = std::move(r);
    if (--req.remaining == 0) finish(req);
}

}  // namespace thingmux::thing
