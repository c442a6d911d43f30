#!/usr/bin/python3
"""A TLS relay between thingmuxd and the test broker that refuses chosen subscriptions.

mosquitto 2.0 grants every SUBSCRIBE whatever its ACL says (it checks at delivery), so a SUBACK
failure, which AWS IoT Core sends for a filter the IoT policy does not allow, never comes from it.
This relay terminates the daemon's TLS with the broker's own certificate, connects to mosquitto
with the Thing's certificate, passes every MQTT packet through unchanged, except that in the
SUBACK answering a SUBSCRIBE it sets the reason code of each filter starting with PREFIX to CODE
(MQTT 5 or 3.1.1 framing, as the CONNECT says).

usage: suback_refuser.py PORT_FILE BROKER_PORT CA CERT KEY CLIENT_CERT CLIENT_KEY PREFIX CODE
Listens on a free loopback port and writes it to PORT_FILE; serves until killed.
"""
import socket
import ssl
import sys
import threading


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def read_packet(sock):
    """One MQTT packet: (first byte, remaining-length bytes, body)."""
    first = read_exact(sock, 1)
    length_bytes = b""
    length = 0
    shift = 0
    while True:
        b = read_exact(sock, 1)
        length_bytes += b
        length |= (b[0] & 0x7F) << shift
        shift += 7
        if b[0] & 0x80 == 0:
            break
    return first, length_bytes, read_exact(sock, length) if length else b""


def varint(data, pos):
    value, shift = 0, 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b & 0x80 == 0:
            return value, pos


class relay:
    def __init__(self, client, upstream, prefix, code):
        self.client, self.upstream = client, upstream
        self.prefix, self.code = prefix, code
        self.v5 = False
        self.refused = {}  # packet id -> indices of the filters to refuse
        self.lock = threading.Lock()

    def from_client(self):
        try:
            while True:
                first, length, body = read_packet(self.client)
                kind = first[0] >> 4
                if kind == 1:  # CONNECT: protocol name, then level
                    name_len = int.from_bytes(body[0:2], "big")
                    self.v5 = body[2 + name_len] == 5
                elif kind == 8:  # SUBSCRIBE
                    pid = int.from_bytes(body[0:2], "big")
                    pos = 2
                    if self.v5:
                        props, pos = varint(body, pos)
                        pos += props
                    indices, i = [], 0
                    while pos < len(body):
                        n = int.from_bytes(body[pos:pos + 2], "big")
                        topic = body[pos + 2:pos + 2 + n].decode()
                        pos += 2 + n + 1
                        if topic.startswith(self.prefix):
                            indices.append(i)
                        i += 1
                    with self.lock:
                        self.refused[pid] = indices
                self.upstream.sendall(first + length + body)
        except (EOFError, OSError):
            self.close()

    def from_broker(self):
        try:
            while True:
                first, length, body = read_packet(self.upstream)
                if first[0] >> 4 == 9:  # SUBACK
                    pid = int.from_bytes(body[0:2], "big")
                    pos = 2
                    if self.v5:
                        props, pos = varint(body, pos)
                        pos += props
                    with self.lock:
                        indices = self.refused.pop(pid, [])
                    codes = bytearray(body[pos:])
                    for i in indices:
                        if i < len(codes):
                            codes[i] = self.code
                    body = body[:pos] + bytes(codes)
                self.client.sendall(first + length + body)
        except (EOFError, OSError):
            self.close()

    def close(self):
        for s in (self.client, self.upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main():
    port_file, broker_port, ca, cert, key, client_cert, client_key, prefix, code = sys.argv[1:10]
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(ca)
    client_ctx.load_cert_chain(client_cert, client_key)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(listener.getsockname()[1]))
    import os
    os.rename(port_file + ".tmp", port_file)
    while True:
        raw, _ = listener.accept()
        try:
            client = server_ctx.wrap_socket(raw, server_side=True)
            upstream = client_ctx.wrap_socket(socket.create_connection(("localhost", int(broker_port))),
                                              server_hostname="localhost")
        except (OSError, ssl.SSLError):
            raw.close()
            continue
        r = relay(client, upstream, prefix, int(code, 0))
        threading.Thread(target=r.from_client, daemon=True).start()
        threading.Thread(target=r.from_broker, daemon=True).start()


if __name__ == "__main__":
    main()
