# SPDX-License-Identifier: GPL-2.0-or-later
"""Shared by the Python integration tests (tests/peers, tests/programs,
tests/status): child processes with collected output, conditions polled with
deadlines (never a sleep as synchronisation), free ports, named cases with a
pass/total summary."""
import socket
import subprocess
import sys
import threading
import time

results = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(cond, what, timeout=30.0):
    """Polls cond() until it returns something true; returns that value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.02)  # polling interval, not synchronisation
    raise AssertionError("timed out waiting for " + what)


def listening(port):
    """A condition: something listens on 127.0.0.1:port (ss, no connection
    made, so servers that serve one connection are not disturbed)."""
    def check():
        out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True,
                             text=True).stdout
        return f":{port} " in out
    return check


class Proc:
    """A child with stdin a pipe and stdout/stderr collected by threads
    (merged into one buffer with merge=True)."""

    def __init__(self, argv, env=None, merge=False, stdin=subprocess.PIPE):
        self.p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT if merge else subprocess.PIPE,
                                  env=env)
        self.out, self.err = bytearray(), bytearray()
        self.lock = threading.Lock()
        self.pumps = [threading.Thread(target=self._pump, args=(self.p.stdout, self.out),
                                       daemon=True)]
        if not merge:
            self.pumps.append(threading.Thread(target=self._pump, args=(self.p.stderr, self.err),
                                               daemon=True))
        for t in self.pumps:
            t.start()

    def _pump(self, stream, buf):
        for chunk in iter(lambda: stream.read1(65536), b""):
            with self.lock:
                buf.extend(chunk)

    def text(self):
        with self.lock:
            return (bytes(self.out) + bytes(self.err)).decode("utf-8", "replace")

    def stdout(self):
        """Everything the child wrote to stdout, once it has exited."""
        for t in self.pumps:
            t.join(30)
        with self.lock:
            return bytes(self.out)

    def send(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def close_stdin(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass

    def wait(self, timeout=30.0):
        """Waits for the child to exit and for its pipes to be read to the
        end: what it printed last is in out/err when this returns (the
        pump threads may still be reading when the child has exited)."""
        rc = self.p.wait(timeout=timeout)
        self.join_pumps()
        return rc

    def join_pumps(self, timeout=10.0):
        for t in self.pumps:
            t.join(timeout)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def plain_roundtrip(port, data, timeout=120):
    """Sends data through a plain TCP connection while reading what comes
    back, then a FIN; returns the bytes received before the peer's EOF."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    back = bytearray()

    def reader():
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            back.extend(chunk)
    th = threading.Thread(target=reader, daemon=True)
    th.start()
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    th.join(timeout)
    s.close()
    return bytes(back)


def case(name):
    """Runs the decorated function at once as a named case; its argument is
    a list the case appends its children to (killed afterwards, their output
    printed on failure)."""
    def deco(fn):
        procs = []
        try:
            fn(procs)
            results.append((name, True))
            print(f"PASS  {name}", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported the same way
            results.append((name, False))
            print(f"FAIL  {name}: {e}", flush=True)
            for p in procs:
                print("      --- output of", " ".join(map(str, p.p.args[:2])), ":\n" +
                      p.text()[-2000:], flush=True)
        finally:
            for p in procs:
                p.kill()
        return fn
    return deco


def finish(suite):
    passed = sum(1 for _, ok in results if ok)
    print(f"\n{suite}: {passed}/{len(results)} passed", flush=True)
    sys.exit(0 if passed == len(results) else 1)
