// The C API (<thingmux/thingmux.h>) over thingmux::client.
//
// The C++ client runs on its own thread (start()); its handlers never call the app's C callbacks
// but queue them (c_api_event_queue.hpp), and the app runs them with thingmux_client_process().
// Every entry point catches everything: no exception crosses into C.
#include "thingmux/thingmux.h"

#include "c_api_event_queue.hpp"
#include "thingmux/client.hpp"
#include "thingmux/topic.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>

namespace {

using thingmux::detail::event_queue;

constexpr int ok = THINGMUX_OK;
constexpr int invalid_argument = THINGMUX_ERR_INVALID_ARGUMENT;
constexpr int internal_error = THINGMUX_ERR_INTERNAL;

// Set while an entry point of this API runs on the current thread: a handler the C++ client calls
// synchronously then (a request refused at once) is on the app's thread, which must not wait for
// room in the queue, since only it could make room.
thread_local int app_call_depth = 0;

struct app_call {
    app_call() noexcept { ++app_call_depth; }
    ~app_call() { --app_call_depth; }
    app_call(const app_call&) = delete;
    app_call& operator=(const app_call&) = delete;
};

// A subscription's C callback. Messages queued for it are dropped once it is no longer active
// (unsubscribed, replaced, refused, lost, client destroyed), so that the app may free user_data
// as soon as thingmux_unsubscribe() returns.
struct subscription_entry {
    subscription_entry(thingmux_message_cb c, void* u) : cb(c), user_data(u) {}
    const thingmux_message_cb cb;
    void* const user_data;
    std::atomic<bool> active{true};
};

template <typename F>
int guarded(F&& f) noexcept {
    try {
        return f();
    } catch (...) {
        // Out of memory or a fault of ours: the app gets a code, never an exception.
        return internal_error;
    }
}

thingmux_result_t c_result(const thingmux::result& r) noexcept {
    thingmux_result_t out{};
    out.struct_size = sizeof out;
    out.code = static_cast<int>(r.code);
    out.reason_code = r.reason_code;
    out.message = r.message.c_str();
    return out;
}

std::size_t message_bytes(const thingmux::message& m) noexcept {
    std::size_t n = m.topic.size() + m.payload.size() + sizeof m;
    n += m.content_type ? m.content_type->size() : 0;
    n += m.response_topic ? m.response_topic->size() : 0;
    n += m.correlation_data ? m.correlation_data->size() : 0;
    for (const auto& p : m.user_properties) {
        n += p.key.size() + p.value.size() + sizeof p;
    }
    return n;
}

std::chrono::milliseconds ms(std::uint32_t v) {
    return std::chrono::milliseconds(v);
}

// The fields of a thingmux_options_t that fit in its struct_size, over the defaults. The first
// version of the struct is this header's: anything shorter is not one.
constexpr std::size_t options_v1_size = sizeof(thingmux_options_t);

int read_options(const thingmux_options_t* in, thingmux_options_t& out) {
    thingmux_options_init(&out);
    if (in == nullptr) {
        return ok;
    }
    if (in->struct_size < options_v1_size) {
        return invalid_argument;
    }
    // A newer header's fields this library does not know: refused unless left at zero, so that
    // a setting is never ignored in silence.
    const auto* bytes = reinterpret_cast<const unsigned char*>(in);
    for (std::size_t i = sizeof(thingmux_options_t); i < in->struct_size; ++i) {
        if (bytes[i] != 0) {
            return invalid_argument;
        }
    }
    std::memcpy(&out, in, sizeof(thingmux_options_t));
    out.struct_size = sizeof(thingmux_options_t);
    const auto is_bool = [](int v) { return v == 0 || v == 1; };
    if (!is_bool(out.wait_for_daemon) || !is_bool(out.reconnect) || out.reconnect_min_ms > out.reconnect_max_ms ||
        out.reconnect_min_ms == 0 || out.handshake_timeout_ms == 0) {
        return invalid_argument;
    }
    return ok;
}

thingmux::options cpp_options(const thingmux_options_t& o) {
    thingmux::options out;
    const auto str = [](const char* s) { return s ? std::string(s) : std::string(); };
    out.socket_path = str(o.socket_path);
    out.app_name = str(o.app_name);
    out.thing = str(o.thing);
    out.session_name = str(o.session_name);
    out.session_expiry = std::chrono::seconds(o.session_expiry_s);
    out.wait_for_daemon = o.wait_for_daemon != 0;
    out.reconnect = o.reconnect != 0;
    out.reconnect_min = ms(o.reconnect_min_ms);
    out.reconnect_max = ms(o.reconnect_max_ms);
    out.handshake_timeout = ms(o.handshake_timeout_ms);
    out.max_backlog = o.max_backlog;
    out.max_backlog_bytes = o.max_backlog_bytes;
    return out;
}

// Checks shared by both publish calls; the topic's validity is checked here too, so that a C app
// gets the most common mistake as the call's result.
int check_publish(const char* topic, const void* payload, std::size_t payload_len, int qos, int retain) {
    if (topic == nullptr || (payload == nullptr && payload_len != 0) || (retain != 0 && retain != 1)) {
        return invalid_argument;
    }
    if (qos == 2) {
        return THINGMUX_ERR_QOS_NOT_SUPPORTED;
    }
    if (qos != 0 && qos != 1) {
        return invalid_argument;
    }
    if (!thingmux::valid_topic_name(topic)) {
        return THINGMUX_ERR_INVALID_TOPIC;
    }
    return ok;
}

// A message handed to a message callback: pointers into `m`, valid while it lives.
struct c_message_view {
    explicit c_message_view(const thingmux::message& m) {
        props.reserve(m.user_properties.size());
        for (const auto& p : m.user_properties) {
            props.push_back({p.key.c_str(), p.value.c_str()});
        }
        view.struct_size = sizeof view;
        view.topic = m.topic.c_str();
        view.payload = m.payload.data();
        view.payload_len = m.payload.size();
        view.qos = m.qos;
        view.retain = m.retain ? 1 : 0;
        view.content_type = m.content_type ? m.content_type->c_str() : nullptr;
        view.response_topic = m.response_topic ? m.response_topic->c_str() : nullptr;
        view.correlation_data = m.correlation_data ? m.correlation_data->data() : nullptr;
        view.correlation_data_len = m.correlation_data ? m.correlation_data->size() : 0;
        view.has_message_expiry = m.message_expiry_seconds ? 1 : 0;
        view.message_expiry_s = m.message_expiry_seconds.value_or(0);
        view.has_payload_format_indicator = m.payload_format_indicator ? 1 : 0;
        view.payload_format_indicator = m.payload_format_indicator.value_or(0);
        view.user_properties = props.empty() ? nullptr : props.data();
        view.user_property_count = props.size();
    }
    std::vector<thingmux_user_property_t> props;
    thingmux_message_t view{};
};

}  // namespace

struct thingmux_client {
    explicit thingmux_client(const thingmux_options_t& o)
        : events(o.max_events ? o.max_events : THINGMUX_DEFAULT_MAX_EVENTS,
                 o.max_event_bytes ? o.max_event_bytes : THINGMUX_DEFAULT_MAX_EVENT_BYTES),
          cpp(cpp_options(o)) {}

    // From a C++ handler: on the library's thread it waits for room (back-pressure); on the app's
    // thread (a request refused at once, or anything during destroy) it never waits.
    void queue(event_queue::item e) {
        if (app_call_depth > 0) {
            events.push_now(std::move(e));
        } else {
            events.push_waiting(std::move(e));
        }
    }

    thingmux::completion_handler completion(thingmux_completion_cb done, void* user_data) {
        if (done == nullptr) {
            return {};
        }
        return [this, done, user_data](const thingmux::result& r) {
            queue({[this, done, user_data, r] {
                       const auto cr = c_result(r);
                       done(this, &cr, user_data);
                   },
                   r.message.size() + sizeof r, true});
        };
    }

    // Runs one event's callback; a C++ exception from an app's callback stops there.
    static void run(event_queue::item& e) noexcept {
        try {
            e.run();
        } catch (...) {
        }
    }

    void deactivate(const std::string& filter, const std::shared_ptr<subscription_entry>& only = nullptr) {
        std::lock_guard lk(subs_mutex);
        const auto it = subs.find(filter);
        if (it != subs.end() && (!only || it->second == only)) {
            it->second->active = false;
            subs.erase(it);
        }
    }

    // Whether the calling thread is inside process()/wait()/destroy() of this client.
    [[nodiscard]] bool dispatching_here() const noexcept { return dispatcher.load() == std::this_thread::get_id(); }

    event_queue events;

    std::mutex callbacks_mutex;
    thingmux_state_cb state_cb = nullptr;
    void* state_user_data = nullptr;
    thingmux_subscription_lost_cb lost_cb = nullptr;
    void* lost_user_data = nullptr;

    std::mutex subs_mutex;
    std::map<std::string, std::shared_ptr<subscription_entry>> subs;

    std::mutex dispatch_mutex;  // one thread runs callbacks at a time
    std::atomic<std::thread::id> dispatcher{};

    // Last: destroyed first, while everything its handlers reach still lives.
    thingmux::client cpp;
};

namespace {

// Marks the calling thread as the one running this client's callbacks.
struct dispatch_scope {
    explicit dispatch_scope(thingmux_client& c) : client(c), lock(c.dispatch_mutex) {
        client.dispatcher = std::this_thread::get_id();
    }
    ~dispatch_scope() { client.dispatcher = std::thread::id(); }
    dispatch_scope(const dispatch_scope&) = delete;
    dispatch_scope& operator=(const dispatch_scope&) = delete;
    thingmux_client& client;
    std::unique_lock<std::mutex> lock;
};

std::size_t process_events(thingmux_client& c, std::size_t max_events) {
    const std::size_t limit = max_events != 0 ? max_events : c.events.size();
    std::size_t n = 0;
    while (n < limit) {
        auto e = c.events.pop();
        if (!e) {
            break;
        }
        thingmux_client::run(*e);
        ++n;
    }
    return n;
}

void install_handlers(thingmux_client* c) {
    c->cpp.on_state([c](const thingmux::state& s) {
        std::size_t bytes = sizeof s + s.daemon_reason.size() + s.uplink_reason.size();
        c->queue({[c, s] {
                      thingmux_state_cb cb = nullptr;
                      void* ud = nullptr;
                      {
                          std::lock_guard lk(c->callbacks_mutex);
                          cb = c->state_cb;
                          ud = c->state_user_data;
                      }
                      if (cb == nullptr) {
                          return;
                      }
                      thingmux_state_t cs{};
                      cs.struct_size = sizeof cs;
                      cs.daemon = static_cast<int>(s.daemon);
                      cs.daemon_reason = s.daemon_reason.c_str();
                      cs.daemon_retry_in_ms = static_cast<std::uint32_t>(s.daemon_retry_in.count());
                      cs.uplink = static_cast<int>(s.uplink);
                      cs.uplink_reason = s.uplink_reason.c_str();
                      cs.uplink_fatal = s.uplink_fatal ? 1 : 0;
                      cs.uplink_retry_in_ms = static_cast<std::uint32_t>(s.uplink_retry_in.count());
                      cb(c, &cs, ud);
                  },
                  bytes, false});
    });
    c->cpp.on_subscription_lost([c](const std::string& filter, const thingmux::result& r) {
        c->deactivate(filter);
        c->queue({[c, filter, r] {
                      thingmux_subscription_lost_cb cb = nullptr;
                      void* ud = nullptr;
                      {
                          std::lock_guard lk(c->callbacks_mutex);
                          cb = c->lost_cb;
                          ud = c->lost_user_data;
                      }
                      if (cb != nullptr) {
                          const auto cr = c_result(r);
                          cb(c, filter.c_str(), &cr, ud);
                      }
                  },
                  filter.size() + r.message.size() + sizeof r, false});
    });
}

int submit_publish(thingmux_client* c, thingmux::message m, thingmux_completion_cb done, void* user_data) {
    app_call scope;
    c->cpp.publish(std::move(m), c->completion(done, user_data));
    return ok;
}

}  // namespace

extern "C" {

const char* thingmux_strerror(int code) {
    if (code < 0 || code > 0xffff) {
        return "unknown error code";
    }
    return thingmux::describe(static_cast<thingmux::error_code>(code));
}

const char* thingmux_error_name(int code) {
    if (code < 0 || code > 0xffff) {
        return "unknown";
    }
    return thingmux::to_string(static_cast<thingmux::error_code>(code));
}

int thingmux_succeeded(int code) {
    return code == THINGMUX_OK || code == THINGMUX_SPOOLED ? 1 : 0;
}

int thingmux_c_api_version(void) {
    return THINGMUX_C_API_VERSION;
}

const char* thingmux_daemon_state_name(int state) {
    if (state < THINGMUX_DAEMON_IDLE || state > THINGMUX_DAEMON_CLOSED) {
        return "unknown";
    }
    return thingmux::to_string(static_cast<thingmux::daemon_state>(state));
}

const char* thingmux_uplink_state_name(int state) {
    if (state < THINGMUX_UPLINK_CONNECTING || state > THINGMUX_UPLINK_STOPPED) {
        return "unknown";
    }
    return thingmux::to_string(static_cast<thingmux::uplink_state>(state));
}

int thingmux_options_init(thingmux_options_t* o) {
    if (o == nullptr) {
        return invalid_argument;
    }
    const thingmux::options d;
    *o = thingmux_options_t{};
    o->struct_size = sizeof *o;
    o->session_expiry_s = static_cast<std::uint32_t>(d.session_expiry.count());
    o->wait_for_daemon = d.wait_for_daemon ? 1 : 0;
    o->reconnect = d.reconnect ? 1 : 0;
    o->reconnect_min_ms = static_cast<std::uint32_t>(d.reconnect_min.count());
    o->reconnect_max_ms = static_cast<std::uint32_t>(d.reconnect_max.count());
    o->handshake_timeout_ms = static_cast<std::uint32_t>(d.handshake_timeout.count());
    o->max_backlog = static_cast<std::uint32_t>(d.max_backlog);
    o->max_backlog_bytes = static_cast<std::uint32_t>(d.max_backlog_bytes);
    o->max_events = THINGMUX_DEFAULT_MAX_EVENTS;
    o->max_event_bytes = THINGMUX_DEFAULT_MAX_EVENT_BYTES;
    return ok;
}

int thingmux_client_create(const thingmux_options_t* options, thingmux_client_t** client_out) {
    return guarded([&] {
        if (client_out == nullptr) {
            return invalid_argument;
        }
        *client_out = nullptr;
        thingmux_options_t o;
        if (const int rc = read_options(options, o); rc != ok) {
            return rc;
        }
        auto c = std::make_unique<thingmux_client>(o);
        install_handlers(c.get());
        c->cpp.start();
        *client_out = c.release();
        return ok;
    });
}

int thingmux_client_destroy(thingmux_client_t* c) {
    if (c == nullptr || c->dispatching_here()) {
        return invalid_argument;
    }
    return guarded([&] {
        {
            dispatch_scope scope(*c);
            app_call call;
            {
                std::lock_guard lk(c->subs_mutex);
                for (auto& [filter, entry] : c->subs) {
                    entry->active = false;
                }
                c->subs.clear();
            }
            {
                std::lock_guard lk(c->callbacks_mutex);
                c->state_cb = nullptr;
                c->lost_cb = nullptr;
            }
            // The library's thread may wait for room: release it, then stop it. close() completes
            // every open request; those completions are queued (without waiting) like the rest.
            c->events.close();
            c->cpp.close();
            // Every completion runs, once; a completion that makes a new request gets it refused
            // with `closed`, queued here too, hence the loop. Messages and states are dropped.
            for (auto batch = c->events.take_all(); !batch.empty(); batch = c->events.take_all()) {
                for (auto& e : batch) {
                    if (e.completion) {
                        thingmux_client::run(e);
                    }
                }
            }
        }
        delete c;
        return ok;
    });
}

int thingmux_client_set_state_callback(thingmux_client_t* c, thingmux_state_cb cb, void* user_data) {
    if (c == nullptr) {
        return invalid_argument;
    }
    std::lock_guard lk(c->callbacks_mutex);
    c->state_cb = cb;
    c->state_user_data = user_data;
    return ok;
}

int thingmux_client_set_subscription_lost_callback(thingmux_client_t* c, thingmux_subscription_lost_cb cb,
                                                   void* user_data) {
    if (c == nullptr) {
        return invalid_argument;
    }
    std::lock_guard lk(c->callbacks_mutex);
    c->lost_cb = cb;
    c->lost_user_data = user_data;
    return ok;
}

int thingmux_client_state(thingmux_client_t* c, int* daemon_state, int* uplink_state) {
    if (c == nullptr) {
        return invalid_argument;
    }
    return guarded([&] {
        const auto s = c->cpp.current_state();
        if (daemon_state != nullptr) {
            *daemon_state = static_cast<int>(s.daemon);
        }
        if (uplink_state != nullptr) {
            *uplink_state = static_cast<int>(s.uplink);
        }
        return ok;
    });
}

int thingmux_client_thing(thingmux_client_t* c, char* buf, size_t len) {
    if (c == nullptr || buf == nullptr || len == 0) {
        return invalid_argument;
    }
    return guarded([&] {
        const auto info = c->cpp.daemon();
        if (!info) {
            return static_cast<int>(THINGMUX_ERR_NOT_CONNECTED);
        }
        if (info->thing.size() >= len) {
            return invalid_argument;
        }
        std::memcpy(buf, info->thing.c_str(), info->thing.size() + 1);
        return ok;
    });
}

int thingmux_client_fd(thingmux_client_t* c, int* fd_out) {
    if (c == nullptr || fd_out == nullptr) {
        return invalid_argument;
    }
    *fd_out = c->events.fd();
    return ok;
}

int thingmux_client_process(thingmux_client_t* c, size_t max_events, size_t* processed) {
    if (processed != nullptr) {
        *processed = 0;
    }
    if (c == nullptr || c->dispatching_here()) {
        return invalid_argument;
    }
    return guarded([&] {
        dispatch_scope scope(*c);
        const auto n = process_events(*c, max_events);
        if (processed != nullptr) {
            *processed = n;
        }
        return ok;
    });
}

int thingmux_client_wait(thingmux_client_t* c, int timeout_ms, size_t* processed) {
    if (processed != nullptr) {
        *processed = 0;
    }
    if (c == nullptr || c->dispatching_here()) {
        return invalid_argument;
    }
    pollfd p{c->events.fd(), POLLIN, 0};
    const int r = ::poll(&p, 1, timeout_ms < 0 ? -1 : timeout_ms);
    if (r < 0 && errno != EINTR) {
        return internal_error;
    }
    if (r <= 0) {
        return ok;  // timed out, or a signal came: the app's loop decides
    }
    return thingmux_client_process(c, 0, processed);
}

int thingmux_connect(thingmux_client_t* c, thingmux_completion_cb done, void* user_data) {
    if (c == nullptr) {
        return invalid_argument;
    }
    return guarded([&] {
        app_call scope;
        c->cpp.connect(c->completion(done, user_data));
        return ok;
    });
}

int thingmux_publish(thingmux_client_t* c, const char* topic, const void* payload, size_t payload_len, int qos,
                     int retain, thingmux_completion_cb done, void* user_data) {
    if (c == nullptr) {
        return invalid_argument;
    }
    if (const int rc = check_publish(topic, payload, payload_len, qos, retain); rc != ok) {
        return rc;
    }
    return guarded([&] {
        thingmux::message m;
        m.topic = topic;
        if (payload_len != 0) {
            m.payload.assign(static_cast<const char*>(payload), payload_len);
        }
        m.qos = qos;
        m.retain = retain != 0;
        return submit_publish(c, std::move(m), done, user_data);
    });
}

int thingmux_publish_message(thingmux_client_t* c, const thingmux_message_t* msg, thingmux_completion_cb done,
                             void* user_data) {
    if (c == nullptr || msg == nullptr || msg->struct_size < sizeof(thingmux_message_t)) {
        return invalid_argument;
    }
    if (const int rc = check_publish(msg->topic, msg->payload, msg->payload_len, msg->qos, msg->retain); rc != ok) {
        return rc;
    }
    if ((msg->correlation_data == nullptr && msg->correlation_data_len != 0) ||
        (msg->user_properties == nullptr && msg->user_property_count != 0) ||
        (msg->has_message_expiry != 0 && msg->has_message_expiry != 1) ||
        (msg->has_payload_format_indicator != 0 && msg->has_payload_format_indicator != 1)) {
        return invalid_argument;
    }
    for (std::size_t i = 0; i < msg->user_property_count; ++i) {
        if (msg->user_properties[i].key == nullptr || msg->user_properties[i].value == nullptr) {
            return invalid_argument;
        }
    }
    return guarded([&] {
        thingmux::message m;
        m.topic = msg->topic;
        if (msg->payload_len != 0) {
            m.payload.assign(static_cast<const char*>(msg->payload), msg->payload_len);
        }
        m.qos = msg->qos;
        m.retain = msg->retain != 0;
        if (msg->content_type != nullptr) {
            m.content_type = msg->content_type;
        }
        if (msg->response_topic != nullptr) {
            m.response_topic = msg->response_topic;
        }
        if (msg->correlation_data != nullptr) {
            m.correlation_data =
                std::string(static_cast<const char*>(msg->correlation_data), msg->correlation_data_len);
        }
        if (msg->has_message_expiry != 0) {
            m.message_expiry_seconds = msg->message_expiry_s;
        }
        if (msg->has_payload_format_indicator != 0) {
            m.payload_format_indicator = msg->payload_format_indicator;
        }
        for (std::size_t i = 0; i < msg->user_property_count; ++i) {
            m.user_properties.push_back({msg->user_properties[i].key, msg->user_properties[i].value});
        }
        return submit_publish(c, std::move(m), done, user_data);
    });
}

int thingmux_subscribe(thingmux_client_t* c, const char* filter, int qos, thingmux_message_cb on_message,
                       void* message_user_data, thingmux_completion_cb done, void* user_data) {
    if (c == nullptr || filter == nullptr || on_message == nullptr) {
        return invalid_argument;
    }
    if (qos == 2) {
        return THINGMUX_ERR_QOS_NOT_SUPPORTED;
    }
    if (qos != 0 && qos != 1) {
        return invalid_argument;
    }
    if (!thingmux::valid_topic_filter(filter)) {
        return THINGMUX_ERR_INVALID_FILTER;
    }
    return guarded([&] {
        app_call scope;
        std::string f(filter);
        auto entry = std::make_shared<subscription_entry>(on_message, message_user_data);
        {
            std::lock_guard lk(c->subs_mutex);
            auto& slot = c->subs[f];
            if (slot) {
                slot->active = false;  // replaced: the C++ client replaces the handler too
            }
            slot = entry;
        }
        auto on_done = c->completion(done, user_data);
        c->cpp.subscribe(
            f, qos,
            [c, entry](const thingmux::message& m) {
                c->queue({[c, entry, m] {
                              if (entry->active) {
                                  const c_message_view v(m);
                                  entry->cb(c, &v.view, entry->user_data);
                              }
                          },
                          message_bytes(m), false});
            },
            [c, entry, f, on_done](const thingmux::result& r) {
                if (!r.ok()) {
                    c->deactivate(f, entry);  // refused: the C++ client dropped the handler too
                }
                if (on_done) {
                    on_done(r);
                }
            });
        return ok;
    });
}

int thingmux_unsubscribe(thingmux_client_t* c, const char* filter, thingmux_completion_cb done, void* user_data) {
    if (c == nullptr || filter == nullptr) {
        return invalid_argument;
    }
    if (!thingmux::valid_topic_filter(filter)) {
        return THINGMUX_ERR_INVALID_FILTER;
    }
    return guarded([&] {
        app_call scope;
        std::string f(filter);
        c->deactivate(f);
        c->cpp.unsubscribe(std::move(f), c->completion(done, user_data));
        return ok;
    });
}

}  // extern "C"
