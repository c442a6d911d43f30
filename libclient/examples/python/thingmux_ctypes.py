#!/usr/bin/env python3
"""libthingmux's C API from Python with ctypes (standard library only).

Subscribes to cmd/THING/#, publishes COUNT QoS 1 messages to dt/THING/py, then one message to a
topic the daemon's policy may refuse (--refused-topic), and waits until it has received RECEIVE
messages. The library's callbacks run in this thread, from a select() loop on the client's fd.

    thingmux_ctypes.py [--lib libthingmux.so.2] [--socket PATH] [--thing THING]
                       [--count COUNT] [--receive RECEIVE] [--refused-topic TOPIC]

Prints one line per fact ("ready", "published_ok N", "refused CODE NAME", "received N") and exits
0 when every publish succeeded and every expected message came within --timeout seconds.
"""

import argparse
import ctypes
import select
import sys
import time

THINGMUX_OK = 0
THINGMUX_SPOOLED = 20


class Options(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("socket_path", ctypes.c_char_p),
        ("app_name", ctypes.c_char_p),
        ("thing", ctypes.c_char_p),
        ("session_name", ctypes.c_char_p),
        ("session_expiry_s", ctypes.c_uint32),
        ("wait_for_daemon", ctypes.c_int),
        ("reconnect", ctypes.c_int),
        ("reconnect_min_ms", ctypes.c_uint32),
        ("reconnect_max_ms", ctypes.c_uint32),
        ("handshake_timeout_ms", ctypes.c_uint32),
        ("max_backlog", ctypes.c_uint32),
        ("max_backlog_bytes", ctypes.c_uint32),
        ("max_events", ctypes.c_uint32),
        ("max_event_bytes", ctypes.c_uint32),
    ]


class Result(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("code", ctypes.c_int),
        ("reason_code", ctypes.c_uint8),
        ("message", ctypes.c_char_p),
    ]


class UserProperty(ctypes.Structure):
    _fields_ = [("key", ctypes.c_char_p), ("value", ctypes.c_char_p)]


class Message(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("topic", ctypes.c_char_p),
        ("payload", ctypes.c_void_p),
        ("payload_len", ctypes.c_size_t),
        ("qos", ctypes.c_int),
        ("retain", ctypes.c_int),
        ("content_type", ctypes.c_char_p),
        ("response_topic", ctypes.c_char_p),
        ("correlation_data", ctypes.c_void_p),
        ("correlation_data_len", ctypes.c_size_t),
        ("has_message_expiry", ctypes.c_int),
        ("message_expiry_s", ctypes.c_uint32),
        ("has_payload_format_indicator", ctypes.c_int),
        ("payload_format_indicator", ctypes.c_uint8),
        ("user_properties", ctypes.POINTER(UserProperty)),
        ("user_property_count", ctypes.c_size_t),
    ]


COMPLETION_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(Result), ctypes.c_void_p)
MESSAGE_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(Message), ctypes.c_void_p)


def load(path):
    lib = ctypes.CDLL(path)
    lib.thingmux_strerror.restype = ctypes.c_char_p
    lib.thingmux_strerror.argtypes = [ctypes.c_int]
    lib.thingmux_error_name.restype = ctypes.c_char_p
    lib.thingmux_error_name.argtypes = [ctypes.c_int]
    lib.thingmux_options_init.argtypes = [ctypes.POINTER(Options)]
    lib.thingmux_client_create.argtypes = [ctypes.POINTER(Options), ctypes.POINTER(ctypes.c_void_p)]
    lib.thingmux_client_destroy.argtypes = [ctypes.c_void_p]
    lib.thingmux_client_fd.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
    lib.thingmux_client_process.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
    lib.thingmux_connect.argtypes = [ctypes.c_void_p, COMPLETION_CB, ctypes.c_void_p]
    lib.thingmux_publish.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t,
                                     ctypes.c_int, ctypes.c_int, COMPLETION_CB, ctypes.c_void_p]
    lib.thingmux_subscribe.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, MESSAGE_CB,
                                       ctypes.c_void_p, COMPLETION_CB, ctypes.c_void_p]
    return lib


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", default="libthingmux.so.2")
    ap.add_argument("--socket", default=None, help="thingmuxd's socket (default: $THINGMUX_SOCKET or /run/thingmux/thingmux.sock)")
    ap.add_argument("--thing", default="gateway-01")
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--receive", type=int, default=0)
    ap.add_argument("--refused-topic", default=None)
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()
    lib = load(args.lib)

    def check(rc, what):
        if rc != THINGMUX_OK:
            sys.exit(f"{what}: {lib.thingmux_strerror(rc).decode()} ({rc})")

    opts = Options()
    check(lib.thingmux_options_init(ctypes.byref(opts)), "options")
    opts.app_name = b"python-ctypes"
    if args.socket:
        opts.socket_path = args.socket.encode()  # copied by create: the bytes may go away after it
    client = ctypes.c_void_p()
    check(lib.thingmux_client_create(ctypes.byref(opts), ctypes.byref(client)), "create")

    # What the callbacks saw. ctypes callbacks must stay referenced while the library may call
    # them: module-level names here, for the client's whole life.
    seen = {"connected": None, "subscribed": None, "ok": 0, "failed": [], "refused": None, "received": []}

    @COMPLETION_CB
    def on_connected(_c, result, _ud):
        seen["connected"] = result.contents.code

    @COMPLETION_CB
    def on_subscribed(_c, result, _ud):
        seen["subscribed"] = result.contents.code

    @COMPLETION_CB
    def on_published(_c, result, _ud):
        r = result.contents
        if r.code in (THINGMUX_OK, THINGMUX_SPOOLED):
            seen["ok"] += 1
        else:
            seen["failed"].append((r.code, r.message.decode(errors="replace")))

    @COMPLETION_CB
    def on_refused(_c, result, _ud):
        seen["refused"] = result.contents.code

    @MESSAGE_CB
    def on_message(_c, message, _ud):
        m = message.contents
        # The payload is bytes with a length; the pointer is valid only during the callback.
        seen["received"].append((m.topic.decode(), ctypes.string_at(m.payload, m.payload_len)))

    fd = ctypes.c_int()
    check(lib.thingmux_client_fd(client, ctypes.byref(fd)), "fd")
    deadline = time.monotonic() + args.timeout

    def run_until(done):
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            readable, _, _ = select.select([fd.value], [], [], left)
            if readable:
                check(lib.thingmux_client_process(client, 0, None), "process")
        return True

    check(lib.thingmux_subscribe(client, f"cmd/{args.thing}/#".encode(), 1, on_message, None, on_subscribed, None),
          "subscribe")
    check(lib.thingmux_connect(client, on_connected, None), "connect")
    if not run_until(lambda: seen["subscribed"] is not None):
        sys.exit("no answer to the subscribe")
    if seen["subscribed"] != THINGMUX_OK:
        sys.exit(f"subscribe refused: {lib.thingmux_error_name(seen['subscribed']).decode()}")
    print("ready", flush=True)

    for i in range(args.count):
        payload = f"py-{i + 1}".encode()
        check(lib.thingmux_publish(client, f"dt/{args.thing}/py".encode(), payload, len(payload), 1, 0,
                                   on_published, None), "publish")
    run_until(lambda: seen["ok"] + len(seen["failed"]) == args.count)
    print(f"published_ok {seen['ok']}", flush=True)
    for code, text in seen["failed"]:
        print(f"publish_failed {code} {text}", flush=True)

    if args.refused_topic:
        check(lib.thingmux_publish(client, args.refused_topic.encode(), b"x", 1, 1, 0, on_refused, None),
              "publish")
        run_until(lambda: seen["refused"] is not None)
        code = seen["refused"]
        name = lib.thingmux_error_name(code).decode() if code is not None else "none"
        print(f"refused {code} {name}", flush=True)

    run_until(lambda: len(seen["received"]) >= args.receive)
    print(f"received {len(seen['received'])}", flush=True)
    check(lib.thingmux_client_destroy(client), "destroy")
    return 0 if seen["ok"] == args.count and len(seen["received"]) >= args.receive else 1


if __name__ == "__main__":
    sys.exit(main())
