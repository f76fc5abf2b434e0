#!/usr/bin/env python3
# Raises the receive buffer of a running `conntrack -E`'s event socket (docs/audit.md, "Nothing lost").
# Why a helper: conntrack 1.4.7 gives `--buffer-size` to its other netlink socket, not to the one subscribed to the
# event groups, and a child network namespace cannot raise net.core.rmem_default; Node has no pidfd_getfd. This
# duplicates the event socket out of conntrack (pidfd_getfd, Linux 5.6+; needs ptrace access to it: root, or
# CAP_SYS_PTRACE where Yama restricts ptrace), sets SO_RCVBUFFORCE (CAP_NET_ADMIN) and closes the duplicate.
# Usage: ct-event-buffer.py PID BYTES FD... (the event sockets' fds in conntrack, which the recorder found in /proc:
# src/audit/ctsource.ts netlinkState). Prints the new size of each; exit 1 with the reason on stderr.
import ctypes
import os
import socket
import sys

SYS_PIDFD_GETFD = 438  # x86_64, aarch64 and the other architectures with the unified syscall table
SO_RCVBUFFORCE = 33


def main() -> int:
    pid, size, fds = int(sys.argv[1]), int(sys.argv[2]), [int(a) for a in sys.argv[3:]]
    if not fds:
        print('no event socket given', file=sys.stderr)
        return 1
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    for target in fds:
        fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, target, 0)
        if fd < 0:
            print(f'pidfd_getfd of fd {target}: {os.strerror(ctypes.get_errno())}', file=sys.stderr)
            return 1
        with socket.socket(fileno=fd) as s:
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
            print(s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (OSError, ValueError) as e:
        print(e, file=sys.stderr)
        sys.exit(1)
