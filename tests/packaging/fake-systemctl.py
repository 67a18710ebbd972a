#!/usr/bin/env python3
"""A stand-in for `systemctl`, for tests/packaging/lifecycle-systemd.sh only.

systemd cannot run in the test environment, so this plays its part for the one unit install.sh manages,
closely enough to exercise install.sh's systemd code paths: it reads ExecStart=, User=, Group=,
Environment= and StateDirectory= from /etc/systemd/system/enclave.service, starts the service as that
user with a NOTIFY_SOCKET and, like Type=notify, returns from `start` only once the service has sent
READY=1 (exit 1 if it exits first or within 120 s). `stop` sends SIGTERM and waits. It enforces none of
the unit's sandboxing: that is what `systemd-analyze security` and a real systemd are for.
"""

import os
import pwd
import shlex
import signal
import socket
import subprocess
import sys
import time

UNIT = "/etc/systemd/system/enclave.service"
STATE = "/run/fake-systemd"
PID = os.path.join(STATE, "enclave.pid")
LOG = os.path.join(STATE, "enclave.log")


def unit_settings():
    settings = {}
    with open(UNIT, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";", "[")) or "=" not in line:
                continue
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def pid():
    try:
        p = int(open(PID).read())
        os.kill(p, 0)
        # A zombie is not running.
        with open(f"/proc/{p}/stat") as f:
            if f.read().split(")")[-1].split()[0] == "Z":
                return None
        return p
    except (OSError, ValueError):
        return None


def start():
    if pid():
        return 0
    s = unit_settings()
    user = s["User"][0]
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    for e in s.get("Environment", []):
        for item in shlex.split(e):
            k, v = item.split("=", 1)
            env[k] = v
    pw = pwd.getpwnam(user)
    for d in s.get("StateDirectory", []):
        path = os.path.join("/var/lib", d)
        os.makedirs(path, exist_ok=True)
        os.chown(path, pw.pw_uid, pw.pw_gid)
        os.chmod(path, int(s.get("StateDirectoryMode", ["0755"])[0], 8))
    notify = os.path.join(STATE, "notify")
    if os.path.exists(notify):
        os.unlink(notify)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(notify)
    os.chmod(notify, 0o777)
    env["NOTIFY_SOCKET"] = notify
    argv = shlex.split(s["ExecStart"][0])
    cwd = s.get("WorkingDirectory", ["/"])[0]
    log = open(LOG, "ab")
    proc = subprocess.Popen(
        ["setpriv", f"--reuid={user}", f"--regid={s.get('Group', [user])[0]}", "--init-groups"] + argv,
        env=env, cwd=cwd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    with open(PID, "w") as f:
        f.write(str(proc.pid))
    sock.settimeout(1)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            msg = sock.recv(4096).decode(errors="replace")
            if "READY=1" in msg.split("\n"):
                if os.path.exists(os.path.join(STATE, "failed")):
                    os.unlink(os.path.join(STATE, "failed"))
                return 0
        except socket.timeout:
            pass
        if proc.poll() is not None:
            break
    print("Job for enclave.service failed (fake systemctl: no READY=1).", file=sys.stderr)
    open(os.path.join(STATE, "failed"), "w").close()
    stop()
    return 1


def stop():
    p = pid()
    if not p:
        return 0
    os.kill(p, signal.SIGTERM)
    for _ in range(900):
        if not pid():
            break
        time.sleep(0.1)
    else:
        os.kill(p, signal.SIGKILL)
    try:
        os.waitpid(p, 0)
    except ChildProcessError:
        pass
    os.unlink(PID)
    return 0


def main():
    os.makedirs(STATE, exist_ok=True)
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    flags = [a for a in sys.argv[1:] if a.startswith("-")]
    cmd = args[0] if args else ""
    enabled = os.path.join(STATE, "enabled")
    with open(os.path.join(STATE, "calls"), "a") as f:
        f.write(" ".join(sys.argv[1:]) + "\n")
    if cmd == "daemon-reload":
        return 0
    if cmd == "enable":
        if not os.path.exists(UNIT):
            return 1
        open(enabled, "w").close()
        return start() if "--now" in flags else 0
    if cmd == "disable":
        if os.path.exists(enabled):
            os.unlink(enabled)
        return stop() if "--now" in flags else 0
    if cmd == "is-enabled":
        return 0 if os.path.exists(enabled) else 1
    if cmd == "is-active":
        return 0 if pid() else 3
    if cmd == "is-failed":
        return 0 if os.path.exists(os.path.join(STATE, "failed")) and not pid() else 1
    if cmd == "reset-failed":
        if os.path.exists(os.path.join(STATE, "failed")):
            os.unlink(os.path.join(STATE, "failed"))
        return 0
    if cmd == "start":
        return start()
    if cmd == "stop":
        return stop()
    if cmd == "restart":
        stop()
        return start()
    if cmd == "show":  # show -p MainPID --value enclave.service
        print(pid() or 0)
        return 0
    print(f"fake systemctl: unsupported: {' '.join(sys.argv[1:])}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
