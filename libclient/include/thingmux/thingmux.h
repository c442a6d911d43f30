/* libthingmux's C API: a stable ABI over the C++ client of <thingmux/client.hpp>, for apps in C
 * and for languages that call C (Rust, Go, Python ctypes/cffi). Pure C99; the same library,
 * libthingmux.so.2. docs/c-api.md has the model, the ownership rules and examples.
 *
 *     thingmux_options_t o;
 *     thingmux_client_t* c = NULL;
 *     thingmux_options_init(&o);
 *     o.app_name = "sensor";
 *     o.wait_for_daemon = 1;   // requests made before the daemon's welcome wait for it
 *     if (thingmux_client_create(&o, &c) != THINGMUX_OK) return 1;
 *     thingmux_connect(c, on_connected, NULL);
 *     thingmux_publish(c, "dt/gateway-01/t", "21.5", 4, 1, 0, on_published, NULL);
 *     for (;;) thingmux_client_wait(c, -1, NULL);   // callbacks run here, in this thread
 *
 * Threading ("callbacks + fd/process"). The library runs its I/O on a thread of its own, but
 * that thread never calls the app's callbacks: it queues events (completions, messages, state
 * changes) and makes thingmux_client_fd() readable. The app's thread runs them with
 * thingmux_client_process() (for poll/select/epoll/asyncio loops) or thingmux_client_wait().
 * Every function may be called from any thread and from inside a callback, except where its
 * comment says otherwise.
 *
 * Results. Every function returning int returns a result code: THINGMUX_OK (0) or one of
 * THINGMUX_ERR_*, the values of libthingmux's thingmux::error_code. A function that returns an
 * error did nothing and calls no callback. A request function (connect, publish, subscribe,
 * unsubscribe) that returns THINGMUX_OK calls its completion callback exactly once, later, from
 * process()/wait(), also when it fails there (the result's code says why) and when the client is
 * destroyed first (THINGMUX_ERR_CLOSED). Codes may be added: treat an unknown one as a failure.
 *
 * Ownership. Every string and buffer the app passes is copied before the call returns. Every
 * pointer the library passes to a callback is valid only during that callback. user_data
 * pointers are the app's; the library only hands them back.
 */
#ifndef THINGMUX_THINGMUX_H
#define THINGMUX_THINGMUX_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define THINGMUX_C_API __attribute__((visibility("default")))
#else
#define THINGMUX_C_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this C API; thingmux_c_api_version() tells the version of the library loaded. */
#define THINGMUX_C_API_VERSION 1

/* Result codes: the values of thingmux::error_code (<thingmux/error.hpp>). */
enum thingmux_result_code {
    THINGMUX_OK = 0,
    THINGMUX_ERR_BROKER_REFUSED = 1,        /* the broker's reason code >= 0x80: see reason_code */
    THINGMUX_ERR_NOT_CONNECTED = 2,         /* no connection to thingmuxd, or its uplink is offline */
    THINGMUX_ERR_INVALID_TOPIC = 3,
    THINGMUX_ERR_INVALID_FILTER = 4,
    THINGMUX_ERR_PAYLOAD_TOO_LARGE = 5,
    THINGMUX_ERR_QOS_NOT_SUPPORTED = 6,
    THINGMUX_ERR_NOT_AUTHORIZED = 7,        /* the daemon's local policy denies this app the topic */
    THINGMUX_ERR_QUOTA_EXCEEDED = 8,
    THINGMUX_ERR_QUEUE_FULL = 9,            /* the app read too slowly and the daemon cut it off */
    THINGMUX_ERR_RATE_LIMITED = 10,
    THINGMUX_ERR_SPOOL_FULL = 11,
    THINGMUX_ERR_SESSION_CLOSED = 12,       /* the connection to thingmuxd ended before the result */
    THINGMUX_ERR_UNSUPPORTED_VERSION = 13,
    THINGMUX_ERR_UNKNOWN_THING = 14,
    THINGMUX_ERR_MALFORMED_FRAME = 15,
    THINGMUX_ERR_PROTOCOL_VIOLATION = 16,
    THINGMUX_ERR_FRAME_TOO_LARGE = 17,
    THINGMUX_ERR_DAEMON_SHUTTING_DOWN = 18,
    THINGMUX_ERR_INTERNAL = 19,             /* a fault in thingmuxd or in the library */
    THINGMUX_SPOOLED = 20,                  /* not an error: stored in the daemon's spool, sent later */
    THINGMUX_ERR_SESSION_TAKEN_OVER = 21,
    THINGMUX_ERR_INVALID_PAYLOAD = 22,
    THINGMUX_ERR_INVALID_CONFIGURATION = 23, /* a reload found problems in the configuration file */
    THINGMUX_ERR_DAEMON_UNAVAILABLE = 1000, /* cannot reach thingmuxd */
    THINGMUX_ERR_CLOSED = 1001,             /* the client was destroyed before the request completed */
    THINGMUX_ERR_BACKLOG_FULL = 1002,       /* too many requests waiting to be sent */
    THINGMUX_ERR_INVALID_ARGUMENT = 1003,   /* NULL or out-of-range argument, or a call not allowed here */
    THINGMUX_ERR_TIMED_OUT = 1004,
    THINGMUX_ERR_CANCELLED = 1005           /* the app cancelled the request (C++ API only, so far) */
};

/* Short human text for a result code ("invalid argument"); "unknown error code" for a value this
 * library does not know. Static storage: never free it. */
THINGMUX_C_API const char* thingmux_strerror(int code);
/* Stable snake_case name of a result code ("not_connected"); "unknown" for an unknown value. */
THINGMUX_C_API const char* thingmux_error_name(int code);
/* A request was taken: THINGMUX_OK or THINGMUX_SPOOLED. 1 or 0. */
THINGMUX_C_API int thingmux_succeeded(int code);
/* THINGMUX_C_API_VERSION of the library loaded. */
THINGMUX_C_API int thingmux_c_api_version(void);

/* ---------------------------------------------------------------------------------------------
 * Options. Always fill them with thingmux_options_init() first: it sets struct_size, which lets
 * later versions add fields at the end without breaking apps built against this header. */

/* Bounds of the event queue (thingmux_options_t::max_events, max_event_bytes) when 0. */
#define THINGMUX_DEFAULT_MAX_EVENTS 1024u
#define THINGMUX_DEFAULT_MAX_EVENT_BYTES (16u * 1024u * 1024u)

typedef struct thingmux_options {
    size_t struct_size;       /* sizeof(thingmux_options_t) as the app was compiled */
    const char* socket_path;  /* NULL or "": $THINGMUX_SOCKET, else /run/thingmux/thingmux.sock */
    const char* app_name;     /* shown in the daemon's logs; NULL or "": the program's name */
    const char* thing;        /* NULL or "": the daemon's default Thing */
    const char* session_name; /* NULL or "": no session (see docs/libthingmux.md, Sessions) */
    uint32_t session_expiry_s; /* with a session: how long the daemon keeps it (default 86400) */
    int wait_for_daemon;       /* nonzero: requests wait for the daemon while it is away (default 0) */
    int reconnect;             /* nonzero: reconnect after a drop (default 1) */
    uint32_t reconnect_min_ms; /* default 100 */
    uint32_t reconnect_max_ms; /* default 5000 */
    uint32_t handshake_timeout_ms; /* default 5000 */
    uint32_t max_backlog;      /* requests waiting to be sent (default 1000) */
    uint32_t max_backlog_bytes; /* their bytes (default 16 MiB) */
    /* The event queue between the library's thread and the app's (0: the defaults above). When
     * either bound is reached, the library's thread waits until the app processes events: it
     * reads nothing more from thingmuxd meanwhile, and thingmuxd queues for the app (up to its
     * client_queue, then it disconnects the app with queue_full, and keeps QoS 1 messages of a
     * session). No event is dropped. An event the app's own call causes (a completion refused at
     * once) never waits: it is queued past the bound. */
    uint32_t max_events;
    uint32_t max_event_bytes;
} thingmux_options_t;

/* Fills *options with the defaults and sets struct_size. THINGMUX_ERR_INVALID_ARGUMENT for NULL. */
THINGMUX_C_API int thingmux_options_init(thingmux_options_t* options);

/* ---------------------------------------------------------------------------------------------
 * Values passed to callbacks. Every pointer in them is valid only during the callback; copy what
 * you keep. Later versions may add fields at the end (struct_size tells how many are there). */

typedef struct thingmux_client thingmux_client_t; /* opaque */

typedef struct thingmux_result {
    size_t struct_size;
    int code;             /* THINGMUX_OK, THINGMUX_SPOOLED or THINGMUX_ERR_* */
    uint8_t reason_code;  /* the broker's PUBACK/SUBACK/UNSUBACK reason code (subscribe: granted QoS) */
    const char* message;  /* human text, NUL-terminated, never NULL (may be "") */
} thingmux_result_t;

typedef struct thingmux_user_property {
    const char* key;   /* NUL-terminated UTF-8 */
    const char* value;
} thingmux_user_property_t;

/* A message: what a message callback receives, and what thingmux_publish_message() sends.
 * Strings are NUL-terminated; the payload and correlation data are bytes with a length. Optional
 * MQTT 5 properties are NULL (or has_* 0) when absent; they travel when the daemon's uplink speaks
 * MQTT 5. */
typedef struct thingmux_message {
    size_t struct_size;
    const char* topic;
    const void* payload;
    size_t payload_len;
    int qos;     /* 0 or 1 */
    int retain;  /* 0 or 1 */
    const char* content_type;
    const char* response_topic;
    const void* correlation_data;
    size_t correlation_data_len;
    int has_message_expiry;
    uint32_t message_expiry_s;
    int has_payload_format_indicator;
    uint8_t payload_format_indicator; /* 0 bytes, 1 UTF-8 */
    const thingmux_user_property_t* user_properties;
    size_t user_property_count;
} thingmux_message_t;

/* Connection state. The library's link to thingmuxd: */
enum thingmux_daemon_state {
    THINGMUX_DAEMON_IDLE = 0,        /* thingmux_connect() not called yet */
    THINGMUX_DAEMON_CONNECTING = 1,
    THINGMUX_DAEMON_CONNECTED = 2,
    THINGMUX_DAEMON_UNAVAILABLE = 3, /* retrying after daemon_retry_in_ms; see daemon_reason */
    THINGMUX_DAEMON_CLOSED = 4
};
/* The daemon's MQTT session for the Thing (the "uplink"): */
enum thingmux_uplink_state {
    THINGMUX_UPLINK_CONNECTING = 0,
    THINGMUX_UPLINK_CONNECTED = 1,
    THINGMUX_UPLINK_BACKING_OFF = 2,
    THINGMUX_UPLINK_FAILED = 3,
    THINGMUX_UPLINK_STOPPED = 4,
    THINGMUX_UPLINK_UNKNOWN = 255   /* not connected to the daemon */
};

typedef struct thingmux_state {
    size_t struct_size;
    int daemon;                 /* enum thingmux_daemon_state */
    const char* daemon_reason;  /* why unavailable, for people; "" while connected */
    uint32_t daemon_retry_in_ms;
    int uplink;                 /* enum thingmux_uplink_state */
    const char* uplink_reason;  /* from the daemon; "" when connected */
    int uplink_fatal;           /* retrying cannot help until a setting or the broker's side changes */
    uint32_t uplink_retry_in_ms;
} thingmux_state_t;

/* Names of the states ("connected", "backing_off"); "unknown" for other values. Static storage. */
THINGMUX_C_API const char* thingmux_daemon_state_name(int state);
THINGMUX_C_API const char* thingmux_uplink_state_name(int state);

/* Callbacks. They run in the thread that calls thingmux_client_process() or _wait(), one at a
 * time. They may call any function of this API except thingmux_client_process(), _wait() and
 * _destroy() on the same client (those return THINGMUX_ERR_INVALID_ARGUMENT there). */
typedef void (*thingmux_completion_cb)(thingmux_client_t* client, const thingmux_result_t* result, void* user_data);
typedef void (*thingmux_message_cb)(thingmux_client_t* client, const thingmux_message_t* message, void* user_data);
typedef void (*thingmux_state_cb)(thingmux_client_t* client, const thingmux_state_t* state, void* user_data);
/* A filter the daemon refused when the library subscribed again after a reconnect: its message
 * callback is not called again. */
typedef void (*thingmux_subscription_lost_cb)(thingmux_client_t* client, const char* filter,
                                              const thingmux_result_t* result, void* user_data);

/* ---------------------------------------------------------------------------------------------
 * The client. */

/* Creates a client (not connected yet) and starts the library's thread. options NULL: the
 * defaults. *client_out receives the handle, owned by the app until thingmux_client_destroy().
 * THINGMUX_ERR_INVALID_ARGUMENT: client_out NULL, options->struct_size too small, or a field this
 * library does not know (past its struct_size) not zero. */
THINGMUX_C_API int thingmux_client_create(const thingmux_options_t* options, thingmux_client_t** client_out);

/* Stops the client and frees it. Requests not completed yet have their completion callback
 * called exactly once, in this call (THINGMUX_ERR_CLOSED, or the result that had already come);
 * no message or state callback runs any more. Closes the fd. Not from inside a callback of this
 * client (THINGMUX_ERR_INVALID_ARGUMENT), and no other call on it may run or follow. */
THINGMUX_C_API int thingmux_client_destroy(thingmux_client_t* client);

/* The state callback, called for every change of the state. NULL removes it. user_data is passed
 * back. Set it before thingmux_connect() to see every change. */
THINGMUX_C_API int thingmux_client_set_state_callback(thingmux_client_t* client, thingmux_state_cb cb, void* user_data);
THINGMUX_C_API int thingmux_client_set_subscription_lost_callback(thingmux_client_t* client,
                                                                  thingmux_subscription_lost_cb cb, void* user_data);

/* The current states (enum thingmux_daemon_state and thingmux_uplink_state); either pointer may be
 * NULL. */
THINGMUX_C_API int thingmux_client_state(thingmux_client_t* client, int* daemon_state, int* uplink_state);

/* The Thing this connection is bound to, while connected: copied NUL-terminated into buf
 * (THINGMUX_ERR_INVALID_ARGUMENT if it does not fit in len bytes; THINGMUX_ERR_NOT_CONNECTED when
 * not connected). */
THINGMUX_C_API int thingmux_client_thing(thingmux_client_t* client, char* buf, size_t len);

/* Event processing. */

/* *fd_out: a file descriptor that is readable while events are pending. Owned by the client
 * (closed by thingmux_client_destroy()): poll it, never read, write or close it. */
THINGMUX_C_API int thingmux_client_fd(thingmux_client_t* client, int* fd_out);

/* Runs the callbacks of up to max_events pending events (0: of all that are pending now) in
 * this thread, without waiting; *processed (may be NULL) gets how many ran. One thread at a time:
 * another thread's call waits for this one. */
THINGMUX_C_API int thingmux_client_process(thingmux_client_t* client, size_t max_events, size_t* processed);

/* Waits up to timeout_ms (negative: without limit, 0: not at all) until events are pending,
 * then processes those pending; *processed (may be NULL) gets how many ran (0 on timeout or when
 * a signal interrupted the wait). */
THINGMUX_C_API int thingmux_client_wait(thingmux_client_t* client, int timeout_ms, size_t* processed);

/* Requests. done may be NULL (the outcome is then not reported); user_data is passed back to it. */

/* Connects to thingmuxd (see wait_for_daemon for when done is called), and reconnects after
 * drops until the client is destroyed. */
THINGMUX_C_API int thingmux_connect(thingmux_client_t* client, thingmux_completion_cb done, void* user_data);

/* Publishes payload (payload_len bytes; payload may be NULL when payload_len is 0) to topic with
 * QoS 0 or 1. QoS 1 completes with the broker's PUBACK (or THINGMUX_SPOOLED), QoS 0 once the
 * daemon passed it on. */
THINGMUX_C_API int thingmux_publish(thingmux_client_t* client, const char* topic, const void* payload,
                                    size_t payload_len, int qos, int retain, thingmux_completion_cb done,
                                    void* user_data);

/* The same with the MQTT 5 properties of *message (struct_size set to sizeof(thingmux_message_t)). */
THINGMUX_C_API int thingmux_publish_message(thingmux_client_t* client, const thingmux_message_t* message,
                                            thingmux_completion_cb done, void* user_data);

/* Subscribes to filter with maximum QoS qos (0 or 1); on_message(client, message,
 * message_user_data) is called for every message matching it, until the filter is
 * unsubscribed, subscribed again (the new callback replaces it), refused, lost, or the client is
 * destroyed. Messages may come before done. */
THINGMUX_C_API int thingmux_subscribe(thingmux_client_t* client, const char* filter, int qos,
                                      thingmux_message_cb on_message, void* message_user_data,
                                      thingmux_completion_cb done, void* user_data);

/* Unsubscribes from filter. Once this returns, the filter's message callback is not called
 * again (messages still queued for it are dropped), so its message_user_data may be freed. */
THINGMUX_C_API int thingmux_unsubscribe(thingmux_client_t* client, const char* filter, thingmux_completion_cb done,
                                        void* user_data);

#ifdef __cplusplus
}
#endif

#endif /* THINGMUX_THINGMUX_H */
