#!/usr/bin/env python3
"""minictr.py - run one program inside an image's file tree the way a Kubernetes pod of
k8s/base/deployment.yaml runs it, without a container runtime (none runs on this project's
machines):

  - a private mount namespace; the tree bind-mounted read-only (readOnlyRootFilesystem: true);
  - tmpfs "emptyDir" volumes (the spill journal, /tmp), bind mounts for "ConfigMap" folders and
    the PostgreSQL socket folder, /proc;
  - chroot into the tree, working directory, supplementary groups dropped, uid/gid 10001
    (runAsNonRoot, runAsUser), no_new_privs (allowPrivilegeEscalation: false);
  - optionally a seccomp filter built from an OCI/Kubernetes seccomp profile JSON
    (k8s/seccomp/trilemma-io-uring.json) with libseccomp, loaded last, just before execve, as
    runc does;
  - then execve of the program: the process keeps the launcher's pid, so the caller's signals
    (SIGTERM) reach it directly.

The network namespace is shared with the caller (the test's simulated provider on 127.0.0.1).

  minictr.py SPEC.json      SPEC: {"root": DIR, "argv": [...], "env": {...}, "cwd": "/",
                                   "uid": 10001, "gid": 10001, "readonly": true,
                                   "tmpfs": [[PATH, "size=64m,mode=1777"], ...],
                                   "binds": [[HOST_DIR, PATH, readonly], ...],
                                   "seccomp": PROFILE_JSON or null}
Must run as root (mount, chroot, setuid). Standard library only (ctypes).
"""

import ctypes
import ctypes.util
import json
import os
import sys

CLONE_NEWNS = 0x00020000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


def die(msg):
    sys.stderr.write("minictr: %s\n" % msg)
    sys.exit(125)


def check(rc, what):
    if rc != 0:
        e = ctypes.get_errno()
        die("%s: %s" % (what, os.strerror(e)))


def mount(src, target, fstype, flags, data=None):
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    check(libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)), "mount %s" % target)


# ---- seccomp (libseccomp through ctypes)

SCMP_ACT = {
    "SCMP_ACT_KILL": 0x00000000,
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
    "SCMP_ACT_LOG": 0x7FFC0000,
}


def seccomp_action(name, errno_ret):
    if name == "SCMP_ACT_ERRNO":
        return 0x00050000 | (errno_ret & 0xFFFF)
    if name not in SCMP_ACT:
        die("unsupported seccomp action %s" % name)
    return SCMP_ACT[name]


def build_seccomp(profile_path):
    """A libseccomp filter context from an OCI profile (names and actions; argument conditions
    are not used by our profile and refused here). Returns (lib, ctx, unknown names)."""
    with open(profile_path) as f:
        prof = json.load(f)
    path = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    lib = ctypes.CDLL(path, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    default = seccomp_action(prof["defaultAction"], prof.get("defaultErrnoRet", 1))
    ctx = lib.seccomp_init(default)
    if not ctx:
        die("seccomp_init failed")
    unknown = []
    for rule in prof.get("syscalls", []):
        if rule.get("args"):
            die("argument conditions are not supported by minictr")
        act = seccomp_action(rule["action"], rule.get("errnoRet", 1))
        for name in rule["names"]:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:
                unknown.append(name)
                continue
            rc = lib.seccomp_rule_add(ctx, act, nr, 0)
            if rc not in (0, -17):  # -EEXIST: the same rule twice
                die("seccomp_rule_add %s: %d" % (name, rc))
    return lib, ctx, unknown


def main():
    if len(sys.argv) != 2:
        die("usage: minictr.py SPEC.json")
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    root = os.path.realpath(spec["root"])
    if os.geteuid() != 0:
        die("needs root")

    # mount points must exist before the tree turns read-only (the runtime creates them too)
    for _, path, *_ in spec.get("binds", []):
        os.makedirs(root + path, exist_ok=True)
    for path, _ in spec.get("tmpfs", []):
        os.makedirs(root + path, exist_ok=True)

    check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount(root, root, None, MS_BIND | MS_REC)
    if spec.get("readonly", True):
        mount(None, root, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)
    mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for path, opts in spec.get("tmpfs", []):
        mount("tmpfs", root + path, "tmpfs", MS_NOSUID | MS_NODEV, opts)
    for src, path, ro in spec.get("binds", []):
        mount(src, root + path, None, MS_BIND)
        if ro:
            mount(None, root + path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)

    seccomp = None
    if spec.get("seccomp"):
        seccomp = build_seccomp(spec["seccomp"])
        if seccomp[2]:
            sys.stderr.write("minictr: syscalls unknown to libseccomp here: %s\n" % " ".join(seccomp[2]))

    os.chroot(root)
    os.chdir(spec.get("cwd", "/"))
    os.setgroups([])
    os.setgid(spec.get("gid", 10001))
    os.setuid(spec.get("uid", 10001))
    argv = spec["argv"]
    env = spec.get("env", {})
    if seccomp:
        lib, ctx, _ = seccomp
        rc = lib.seccomp_load(ctx)  # sets no_new_privs first (libseccomp's default)
        if rc != 0:
            die("seccomp_load: %d" % rc)
    else:
        PR_SET_NO_NEW_PRIVS = 38
        check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    os.execve(argv[0], argv, env)


if __name__ == "__main__":
    main()
