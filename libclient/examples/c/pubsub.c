/* libthingmux's C API in a poll() loop: subscribes to cmd/THING/#, publishes COUNT QoS 1
 * messages to dt/THING/pubsub, prints each failed publish, the count of those that succeeded and
 * each message received, and runs until every publish completed and RECEIVE messages came (0:
 * until SIGINT/SIGTERM).
 *
 *     thingmux-example-c-pubsub [-s SOCKET] [-t THING] [-n COUNT] [-r RECEIVE]
 *
 * Build outside the tree: cc -std=c99 pubsub.c $(pkg-config --cflags --libs thingmux)
 */
#define _POSIX_C_SOURCE 200809L

#include <thingmux/thingmux.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

struct app {
    unsigned long published_ok;
    unsigned long published_failed;
    unsigned long received;
};

static void on_connected(thingmux_client_t* c, const thingmux_result_t* r, void* user_data) {
    (void)c;
    (void)user_data;
    printf("connect: %s%s%s\n", thingmux_error_name(r->code), r->message[0] ? ": " : "", r->message);
}

static void on_subscribed(thingmux_client_t* c, const thingmux_result_t* r, void* user_data) {
    (void)c;
    printf("subscribe %s: %s (granted QoS %u)\n", (const char*)user_data, thingmux_error_name(r->code),
           (unsigned)r->reason_code);
    fflush(stdout);
}

static void on_published(thingmux_client_t* c, const thingmux_result_t* r, void* user_data) {
    struct app* a = (struct app*)user_data;
    (void)c;
    if (thingmux_succeeded(r->code)) {
        ++a->published_ok;
    } else {
        ++a->published_failed;
        printf("publish failed: %s (%d): %s\n", thingmux_error_name(r->code), r->code, r->message);
    }
}

static void on_message(thingmux_client_t* c, const thingmux_message_t* m, void* user_data) {
    struct app* a = (struct app*)user_data;
    (void)c;
    ++a->received;
    /* The payload is bytes, not a C string: print it with its length. */
    printf("message on %s (QoS %d): %.*s\n", m->topic, m->qos, (int)m->payload_len, (const char*)m->payload);
    fflush(stdout);
}

static void on_state(thingmux_client_t* c, const thingmux_state_t* s, void* user_data) {
    (void)c;
    (void)user_data;
    printf("state: daemon %s, uplink %s%s%s\n", thingmux_daemon_state_name(s->daemon),
           thingmux_uplink_state_name(s->uplink), s->daemon_reason[0] ? " — " : "", s->daemon_reason);
}

static int fail(const char* what, int rc) {
    fprintf(stderr, "%s: %s (%s)\n", what, thingmux_strerror(rc), thingmux_error_name(rc));
    return 1;
}

int main(int argc, char** argv) {
    const char* socket_path = NULL;
    const char* thing = "gateway-01";
    unsigned long count = 3;
    unsigned long receive = 0;
    struct app a = {0, 0, 0};
    thingmux_options_t o;
    thingmux_client_t* c = NULL;
    char filter[256];
    char topic[256];
    unsigned long i;
    int fd = -1;
    int reported = 0;
    int rc;
    int opt;
    struct sigaction sa;

    while ((opt = getopt(argc, argv, "s:t:n:r:")) != -1) {
        switch (opt) {
            case 's': socket_path = optarg; break;
            case 't': thing = optarg; break;
            case 'n': count = strtoul(optarg, NULL, 10); break;
            case 'r': receive = strtoul(optarg, NULL, 10); break;
            default:
                fprintf(stderr, "usage: %s [-s SOCKET] [-t THING] [-n COUNT] [-r RECEIVE]\n", argv[0]);
                return 2;
        }
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    thingmux_options_init(&o);
    o.socket_path = socket_path; /* NULL: $THINGMUX_SOCKET or the default */
    o.app_name = "c-pubsub";
    /* Requests made before the daemon welcomed us (or while it restarts) wait for it, instead of
     * failing with THINGMUX_ERR_NOT_CONNECTED: the publishes below may be made at once. */
    o.wait_for_daemon = 1;
    if ((rc = thingmux_client_create(&o, &c)) != THINGMUX_OK) return fail("create", rc);
    thingmux_client_set_state_callback(c, on_state, NULL);

    /* Strings are copied by every call: these buffers may be reused at once. */
    snprintf(filter, sizeof filter, "cmd/%s/#", thing);
    snprintf(topic, sizeof topic, "dt/%s/pubsub", thing);
    if ((rc = thingmux_subscribe(c, filter, 1, on_message, &a, on_subscribed, "cmd")) != THINGMUX_OK)
        return fail("subscribe", rc);
    if ((rc = thingmux_connect(c, on_connected, NULL)) != THINGMUX_OK) return fail("connect", rc);
    for (i = 0; i < count; ++i) {
        char payload[32];
        int n = snprintf(payload, sizeof payload, "%lu", i + 1);
        rc = thingmux_publish(c, topic, payload, (size_t)n, 1, 0, on_published, &a);
        if (rc != THINGMUX_OK) return fail("publish", rc);
    }

    /* The app's own loop: poll the client's fd (with any others of the app) and let the library
     * run the callbacks here, in this thread. */
    thingmux_client_fd(c, &fd);
    while (!stop_requested) {
        struct pollfd p;
        int all_published = a.published_ok + a.published_failed == count;
        if (all_published && !reported) {
            printf("published %lu of %lu\n", a.published_ok, count);
            fflush(stdout);
            reported = 1;
        }
        if (receive > 0 && all_published && a.received >= receive) break;
        p.fd = fd;
        p.events = POLLIN;
        p.revents = 0;
        if (poll(&p, 1, 1000) < 0 && errno != EINTR) break;
        if (p.revents & POLLIN) thingmux_client_process(c, 0, NULL);
    }
    printf("received %lu\n", a.received);
    /* Completions still pending run inside destroy (with THINGMUX_ERR_CLOSED). */
    thingmux_client_destroy(c);
    return 0;
}
