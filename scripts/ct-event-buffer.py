#!/usr/bin/env python3
# Raises the receive buffer of a running `conntrack -E`'s event socket (docs/audit.md, "Nothing lost").
# Why a helper: conntrack 1.4.7 gives `--buffer-size` to its other netlink socket, not to the one subscribed to the
# event groups, and a child network namespace cannot raise net.core.rmem_default; Node has no pidfd_getfd. This
# duplicates the event socket out of conntrack (pidfd_getfd, Linux 5.6+; needs ptrace access to it: root, or
# CAP_SYS_PTRACE where Yama restricts ptrace), sets SO_RCVBUFFORCE (CAP_NET_ADMIN) and closes the duplicate.
# Usage: ct-event-buffer.py PID BYTES. Prints the new size of each socket it raised; exit 1 with the reason on stderr.
import ctypes
import os
import socket
import sys

SYS_PIDFD_GETFD = 438  # x86_64, aarch64 and the other architectures with the unified syscall table
SO_RCVBUFFORCE = 33
NETLINK_NETFILTER = '12'


def main() -> int:
    pid, size = int(sys.argv[1]), int(sys.argv[2])
    subscribed = {}
    with open(f'/proc/{pid}/net/netlink') as f:
        head = f.readline().split()
        eth, groups, inode = head.index('Eth'), head.index('Groups'), head.index('Inode')
        for line in f:
            c = line.split()
            if len(c) > inode and c[eth] == NETLINK_NETFILTER and int(c[groups], 16) != 0:
                subscribed[c[inode]] = True
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    raised = 0
    for name in os.listdir(f'/proc/{pid}/fd'):
        target = os.readlink(f'/proc/{pid}/fd/{name}')
        if not (target.startswith('socket:[') and target[8:-1] in subscribed):
            continue
        fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(name), 0)
        if fd < 0:
            print(f'pidfd_getfd: {os.strerror(ctypes.get_errno())}', file=sys.stderr)
            return 1
        s = socket.socket(fileno=fd)
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
            print(s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
            raised += 1
        finally:
            s.close()
    if raised == 0:
        print('no subscribed netlink socket', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (OSError, ValueError, IndexError) as e:
        print(e, file=sys.stderr)
        sys.exit(1)
