"""Set resource limits on this process, then exec the real command (so the server never uses preexec_fn).

Run as ``python -I -S limited_exec.py <memory_mb> <cpu_s> <open_files> <file_size_mb> -- <argv...>``.
The PID stays the same through ``execv``, so the launched strategy keeps this process's session
and process group (the parent starts it with ``start_new_session=True``). Standard library only:
it runs under ``-S`` before any site-packages exist.
"""

import os
import resource
import sys

MIB = 1024 * 1024


def _limit(which: int, soft: int, hard: int | None = None) -> None:
    hard = soft if hard is None else hard
    _, current_hard = resource.getrlimit(which)
    if current_hard != resource.RLIM_INFINITY:  # an unprivileged process cannot raise its hard limit
        soft, hard = min(soft, current_hard), min(hard, current_hard)
    resource.setrlimit(which, (soft, hard))


def main(argv: list[str]) -> None:
    split = argv.index("--")
    memory_mb, cpu_s, open_files, file_size_mb = (int(x) for x in argv[:split])
    command = argv[split + 1:]
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
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
