#!/usr/bin/python3
"""An unmodified MQTT app for the integration tests: Debian's python3-paho-mqtt (1.6) over TCP.

    paho_client.py HOST PORT VERSION ACTION [options]

VERSION is 3 (MQTT 3.1.1) or 5. Every line it prints is flushed at once:
  "connack N"             the CONNACK's reason code (0: accepted; 3.1.1 return codes or MQTT 5 reason codes)
  "suback N"              the SUBACK's granted QoS / reason code
  "published N"           the N-th publish was sent (QoS 0) or acknowledged (QoS 1)
  "message TOPIC PAYLOAD" a message received (its topic resolved from its Topic Alias, if any)
  "alias N set TOPIC"     a message set Topic Alias N to TOPIC (MQTT 5, --topic-alias-maximum)
  "alias N used"          a message came with an empty topic name and Topic Alias N
  "alias N unknown"       ... and no message had set alias N: the message cannot be placed
  "closed"                the server closed the connection
ACTION:
  connect                 connect, print the CONNACK, disconnect
  publish TOPIC QOS N     publish payloads 1..N, then disconnect
  subscribe FILTER QOS N  subscribe, print N messages, then disconnect
  hold                    connect (with --will-topic/--will-payload), then wait until killed
Exit code: 0 when all went as asked, 2 when the CONNACK refused, 3 on a time-out, 4 when the
server closed the connection first.

paho 1.6 hands a message sent with a Topic Alias to on_message as it came (an empty topic name
and the TopicAlias property) without resolving it: the app keeps the mapping, as done here.
"""
import argparse
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def say(line):
    print(line, flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("version", choices=["3", "5"])
    p.add_argument("action", choices=["connect", "publish", "subscribe", "hold"])
    p.add_argument("args", nargs="*")
    p.add_argument("--client-id", default="")
    p.add_argument("--username")
    p.add_argument("--password")
    p.add_argument("--will-topic")
    p.add_argument("--will-payload", default="")
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--topic-alias-maximum", type=int, default=0,
                   help="MQTT 5: the Topic Alias Maximum of the CONNECT (0: none, no aliases to this client)")
    a = p.parse_args()

    v5 = a.version == "5"
    client_id = a.client_id or ("" if v5 else "paho-" + a.action)
    c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                    **({} if v5 else {"clean_session": True}))
    if a.username is not None:
        c.username_pw_set(a.username, a.password)
    if a.will_topic:
        c.will_set(a.will_topic, a.will_payload, qos=1)

    connected = threading.Event()
    subscribed = threading.Event()
    closed = threading.Event()
    received = []
    done = threading.Event()
    want = {"n": 0}
    result = {"rc": None}

    def on_connect(client, userdata, flags, rc, properties=None):
        code = rc.value if hasattr(rc, "value") else rc
        result["rc"] = code
        say("connack %d" % code)
        connected.set()

    def on_subscribe(client, userdata, mid, granted, properties=None):
        for g in granted:
            say("suback %d" % (g.value if hasattr(g, "value") else g))
        subscribed.set()

    aliases = {}

    def resolved_topic(msg):
        alias = getattr(msg.properties, "TopicAlias", None) if v5 and msg.properties else None
        if alias is None:
            return msg.topic
        if msg.topic:
            aliases[alias] = msg.topic
            say("alias %d set %s" % (alias, msg.topic))
            return msg.topic
        if alias not in aliases:
            say("alias %d unknown" % alias)
            return ""
        say("alias %d used" % alias)
        return aliases[alias]

    def on_message(client, userdata, msg):
        say("message %s %s" % (resolved_topic(msg), msg.payload.decode("utf-8", "replace")))
        received.append(msg)
        if len(received) >= want["n"] > 0:
            done.set()

    def on_disconnect(client, userdata, rc, properties=None):
        closed.set()
        connected.set()
        subscribed.set()
        done.set()

    c.on_connect = on_connect
    c.on_subscribe = on_subscribe
    c.on_message = on_message
    c.on_disconnect = on_disconnect
    connect_props = None
    if v5 and a.topic_alias_maximum:
        connect_props = Properties(PacketTypes.CONNECT)
        connect_props.TopicAliasMaximum = a.topic_alias_maximum
    c.connect(a.host, a.port, keepalive=60, **({"properties": connect_props} if connect_props else {}))
    c.loop_start()
    if not connected.wait(a.timeout):
        return 3
    if result["rc"] != 0:
        return 2

    status = 0
    if a.action == "publish":
        topic, qos, n = a.args[0], int(a.args[1]), int(a.args[2])
        for i in range(1, n + 1):
            info = c.publish(topic, str(i), qos=qos)
            deadline = time.monotonic() + a.timeout
            while not info.is_published() and not closed.is_set() and time.monotonic() < deadline:
                closed.wait(0.01)
            if closed.is_set():
                say("closed")
                return 4
            if not info.is_published():
                return 3
            say("published %d" % i)
    elif a.action == "subscribe":
        flt, qos, n = a.args[0], int(a.args[1]), int(a.args[2])
        want["n"] = n
        c.subscribe(flt, qos=qos)
        if not subscribed.wait(a.timeout):
            return 3
        if not done.wait(a.timeout):
            return 3
        if closed.is_set() and len(received) < n:
            say("closed")
            return 4
    elif a.action == "hold":
        say("holding")
        closed.wait()
        say("closed")
        return 4
    c.disconnect()
    c.loop_stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
