"""Set resource limits on this process, drop to the strategy's uid if asked, then exec the real command.

Run as ``python -I -S limited_exec.py <memory_mb> <cpu_s> <open_files> <file_size_mb>
[--uid N --gid N [--reach PATH]...] -- <argv...>`` (so the server never uses preexec_fn).
The PID stays the same through ``execv``, so the launched strategy keeps this process's session
and process group (the parent starts it with ``start_new_session=True``). Standard library only:
it runs under ``-S`` before any site-packages exist.

With ``--uid``/``--gid`` (the server is root), after the limits:

1. every ``--reach`` path (the interpreter, its prefixes, the script, the work directory) must be
   reachable by the new uid. A directory on the way that it cannot search (e.g. ``/root`` of a
   Python installed under root's home, or a 0700 temporary directory) is covered, in a private
   mount namespace of this process only, by an empty tmpfs (mode 0711) into which just the needed
   entries are bind-mounted; everything else in that directory becomes invisible. If the
   namespace cannot be made the process exits with code 126 and says why;
2. supplementary groups are cleared, then gid and uid set (real, effective and saved),
   PR_SET_NO_NEW_PRIVS is set (setuid binaries give no privileges) and umask becomes 077;
3. it checks that root cannot be regained (``setuid(0)`` must fail); otherwise it exits with 126.
"""

import os
import resource
import stat
import sys

MIB = 1024 * 1024
CLONE_NEWNS = 0x00020000
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 4096, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS = 38
REFUSED = 126


def _limit(which: int, soft: int, hard: int | None = None) -> None:
    hard = soft if hard is None else hard
    _, current_hard = resource.getrlimit(which)
    if current_hard != resource.RLIM_INFINITY:  # an unprivileged process cannot raise its hard limit
        soft, hard = min(soft, current_hard), min(hard, current_hard)
    resource.setrlimit(which, (soft, hard))


def _refuse(message: str) -> None:
    os.write(2, f"=== quantdesk: strategy not started: {message} ===\n".encode())
    os._exit(REFUSED)


def _searchable(st: os.stat_result, uid: int, gid: int) -> bool:
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def blockers(paths: list[str], uid: int, gid: int) -> dict[str, set[str]]:
    """Directories on the way to ``paths`` that ``uid``/``gid`` cannot search -> the entries needed in them."""
    found: dict[str, set[str]] = {}
    for path in paths:
        parts = os.path.realpath(path).strip("/").split("/")
        current = "/"
        for part in parts:
            if not part:
                continue
            try:
                st = os.stat(current)
            except OSError:
                break
            if not _searchable(st, uid, gid):
                found.setdefault(current, set()).add(part)
            current = os.path.join(current, part)
    return found


def _libc():
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
    return libc, ctypes


def _enc(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def _mount(libc, ctypes, source, target, fstype, flags, data=None) -> None:  # noqa: ANN001
    if libc.mount(_enc(source), _enc(target), _enc(fstype), flags, _enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def make_reachable(needed: dict[str, set[str]]) -> None:
    """Cover each blocking directory with a 0711 tmpfs holding only the needed entries (outermost first)."""
    libc, ctypes = _libc()
    if libc.unshare(CLONE_NEWNS) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"a private mount namespace is not allowed: {os.strerror(err)}")
    # nothing done below may propagate to the server's mounts
    _mount(libc, ctypes, None, "/", None, MS_REC | MS_PRIVATE)
    cwd = os.getcwd()
    for directory in sorted(needed, key=lambda d: d.count("/")):
        keep = {}
        for name in needed[directory]:
            keep[name] = os.open(os.path.join(directory, name), os.O_PATH | os.O_NOFOLLOW)
        try:
            _mount(libc, ctypes, "tmpfs", directory, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0711,size=64k")
            for name, fd in keep.items():
                target = os.path.join(directory, name)
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    os.mkdir(target, 0o711)
                else:
                    os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o600))
                _mount(libc, ctypes, f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC)
        finally:
            for fd in keep.values():
                os.close(fd)
    os.chdir(cwd)  # through the new mounts


def drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    libc, ctypes = _libc()
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        _refuse(f"PR_SET_NO_NEW_PRIVS failed: {os.strerror(ctypes.get_errno())}")
    os.umask(0o077)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or os.getgroups():
        _refuse("the strategy user could not be set")
    try:
        os.setuid(0)
    except PermissionError:
        return
    _refuse("root privileges could be regained")


def main(argv: list[str]) -> None:
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1:]
    memory_mb, cpu_s, open_files, file_size_mb = (int(x) for x in options[:4])
    uid = gid = None
    reach: list[str] = []
    rest = options[4:]
    for flag, value in zip(rest[::2], rest[1::2], strict=True):
        if flag == "--uid":
            uid = int(value)
        elif flag == "--gid":
            gid = int(value)
        elif flag == "--reach":
            reach.append(value)
        else:
            raise SystemExit(f"limited_exec: unknown option {flag}")
    if memory_mb > 0:
        _limit(resource.RLIMIT_AS, memory_mb * MIB)
    if cpu_s > 0:
        # the soft limit sends SIGXCPU (reported as a CPU limit); the hard one SIGKILLs 5 s later
        _limit(resource.RLIMIT_CPU, cpu_s, cpu_s + 5)
    if open_files > 0:
        _limit(resource.RLIMIT_NOFILE, open_files)
    if file_size_mb > 0:
        _limit(resource.RLIMIT_FSIZE, file_size_mb * MIB)
    _limit(resource.RLIMIT_CORE, 0)
    if uid is not None and gid is not None:
        needed = blockers(reach, uid, gid)
        if needed:
            try:
                make_reachable(needed)
            except OSError as exc:
                _refuse(f"{', '.join(sorted(needed))} cannot be searched by uid {uid} and {exc.strerror or exc}; "
                        "make the Python installation and the data directory reachable by other users")
        drop_privileges(uid, gid)
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
