#!/usr/bin/env python3
"""A stand-in for systemd's service side, for tests that cannot have systemd as PID 1: it runs
one command as a Type=notify service with a file descriptor store (sd_notify FDSTORE=1 /
FDSTOREREMOVE=1 / FDNAME=, FileDescriptorStoreMax=) and hands the stored fds to every new
process as LISTEN_FDS / LISTEN_FDNAMES / LISTEN_PID, as systemd does on a restart.

Usage: fake-systemd.py <notify socket path> -- <command...>
Reads commands on stdin, one per line, and answers each with one JSON line on stdout:
  start            start the command (fds of the store at 3.., in store order)
  kill             SIGKILL the process and reap it (a crash)
  term             SIGTERM the process and wait for it to exit (a stop)
  status           {"pid", "ready", "stored": [names], "messages": n}
Only the test's own processes are ever signalled (by the pid this program started).
"""
import array
import fcntl
import json
import os
import signal
import socket
import sys
import threading

notify_path = sys.argv[1]
command = sys.argv[sys.argv.index("--") + 1:]

store = []  # [(name, fd)] in store order
lock = threading.Lock()
state = {"pid": None, "ready": False, "messages": 0}

if os.path.exists(notify_path):
    os.unlink(notify_path)
notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify.bind(notify_path)


def receive():
    while True:
        fds = array.array("i")
        data, ancdata, _flags, _addr = notify.recvmsg(4096, socket.CMSG_SPACE(64 * fds.itemsize))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
        fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
        with lock:
            state["messages"] += 1
            if fields.get("READY") == "1":
                state["ready"] = True
            name = fields.get("FDNAME", "stored")
            if fields.get("FDSTOREREMOVE") == "1":
                for entry in [entry for entry in store if entry[0] == name]:
                    os.close(entry[1])
                    store.remove(entry)
            if fields.get("FDSTORE") == "1":
                store.extend((name, fd) for fd in fds)
            elif fds:
                for fd in fds:
                    os.close(fd)


threading.Thread(target=receive, daemon=True).start()


def start():
    with lock:
        entries = list(store)
        state["ready"] = False
    pid = os.fork()
    if pid == 0:
        # Above every fd the store could occupy first, then into 3.. in store order. The
        # service's stdout is our answer channel: it writes to our stderr instead.
        os.dup2(2, 1)
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 1000) for _, fd in entries]
        for index, fd in enumerate(high):
            os.dup2(fd, 3 + index, inheritable=True)
        env = dict(os.environ)
        env["NOTIFY_SOCKET"] = notify_path
        if entries:
            env["LISTEN_FDS"] = str(len(entries))
            env["LISTEN_FDNAMES"] = ":".join(name for name, _ in entries)
            env["LISTEN_PID"] = str(os.getpid())
        os.closerange(3 + len(entries), 65536)
        os.execvpe(command[0], command, env)
    state["pid"] = pid
    return {"pid": pid, "passed": [name for name, _ in entries]}


def stop(sig):
    pid = state["pid"]
    if pid is None:
        return {"error": "not running"}
    os.kill(pid, sig)
    _, status = os.waitpid(pid, 0)
    state["pid"] = None
    return {"pid": pid, "status": status}


for line in sys.stdin:
    what = line.strip()
    if what == "start":
        answer = start()
    elif what == "kill":
        answer = stop(signal.SIGKILL)
    elif what == "term":
        answer = stop(signal.SIGTERM)
    elif what == "status":
        with lock:
            answer = {"pid": state["pid"], "ready": state["ready"], "stored": [name for name, _ in store], "messages": state["messages"]}
    else:
        answer = {"error": f"unknown command {what!r}"}
    print(json.dumps(answer), flush=True)

if state["pid"] is not None:
    stop(signal.SIGTERM)
