#!/usr/bin/env python3
"""test_harness.py - the harness's own connection helpers, where a real server cannot produce the
case on demand: harness.try_connect and test_drain's new_connection_outcome count a TCP connection
that was refused or reset from connect() itself as "not accepted" (a listener closed while a SYN
waited in its queue answers it with RST: a race the drain tests hit once)."""

import socket

import harness
import test_drain

suite = harness.Suite("harness")


def listener():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


@suite.test
def try_connect_accepted():
    s, port = listener()
    s.listen(1)
    try:
        conn, how = harness.try_connect(port)
        assert how is None and isinstance(conn, harness.Conn), (conn, how)
        conn.close()
    finally:
        s.close()


@suite.test
def try_connect_refused():
    s, port = listener()  # bound, not listening: the kernel refuses
    try:
        assert harness.try_connect(port) == (None, "refused")
        assert test_drain.new_connection_outcome(port) == "refused"
    finally:
        s.close()


@suite.test
def reset_from_connect_is_not_accepted():
    opened = []
    real_connect = socket.socket.connect

    def reset(self, addr):
        opened.append(self)
        raise ConnectionResetError(104, "Connection reset by peer")

    socket.socket.connect = reset
    try:
        s, port = listener()
        s.close()
        assert harness.try_connect(port) == (None, "reset")
        assert test_drain.new_connection_outcome(port) == "reset"
    finally:
        socket.socket.connect = real_connect
    assert opened and all(sock.fileno() == -1 for sock in opened), "a socket that failed to connect was left open"


if __name__ == "__main__":
    suite.main()
