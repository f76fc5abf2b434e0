#!/usr/bin/env python3
# Tunes a running `conntrack -E`'s event socket (docs/audit.md, "Nothing lost"): raises its receive buffer and
# attaches a socket filter that keeps only source-translated entries' events, in the kernel.
# Why a helper: conntrack 1.4.7 gives `--buffer-size` to its other netlink socket, not to the one subscribed to the
# event groups; a child network namespace cannot raise net.core.rmem_default; and `--src-nat` filters in conntrack
# itself, after the kernel has queued every event of the namespace and woken conntrack for it (on a node, one per
# connection passing through; docs/benchmarks.md, "Gateway path experiments", `ctfilter`). Node has no pidfd_getfd.
# This duplicates each event socket out of conntrack (pidfd_getfd, Linux 5.6+; needs ptrace access to it: root, or
# CAP_SYS_PTRACE where Yama restricts ptrace), sets SO_RCVBUFFORCE (CAP_NET_ADMIN) and SO_ATTACH_FILTER on it (the
# socket is shared, so conntrack's own fd gets both) and closes the duplicate.
# Usage: ct-event-socket.py PID BYTES FD...
#   BYTES  the receive buffer to set; 0 leaves it as it is
#   FD     the event sockets' fds in conntrack, which the recorder found in /proc (src/audit/ctsource.ts netlinkState)
# Prints one JSON line {"rcvbuf": N, "filter": "snat"} (rcvbuf: the first socket's size now); exit 1 with the reason
# on stderr.
import ctypes
import json
import os
import socket
import struct
import sys

SYS_PIDFD_GETFD = 438  # x86_64, aarch64 and the other architectures with the unified syscall table
SO_RCVBUFFORCE = 33
SO_ATTACH_FILTER = 26

# The classic BPF program. A ctnetlink event is one netlink message per skb: nlmsghdr (16 bytes), nfgenmsg (4), then
# attributes; CTA_STATUS (type 3) is a top-level u32 in network byte order, with IPS_SRC_NAT (bit 4) set once source
# NAT has changed the tuple — the same test as conntrack's `--src-nat` (the reply tuple is not the original's
# inverse). SKF_AD_NLATTR finds attribute X from offset A (0 when there is none). A message without CTA_STATUS (none
# is expected) is kept: conntrack's own `--src-nat` still decides, so this filter can only save work, never add any.
SKF_AD_NLATTR = 0xFFFFF000 + 12  # SKF_AD_OFF + SKF_AD_NLATTR
CTA_STATUS = 3
IPS_SRC_NAT = 1 << 4
SNAT_FILTER = [
    (0x00, 0, 0, 20),             # ld #20            A = the first attribute
    (0x01, 0, 0, CTA_STATUS),     # ldx #CTA_STATUS
    (0x20, 0, 0, SKF_AD_NLATTR),  # ld #nla           A = offset of CTA_STATUS, or 0
    (0x15, 3, 0, 0),              # jeq #0, keep
    (0x07, 0, 0, 0),              # tax
    (0x40, 0, 0, 4),              # ld [x + 4]        A = the status
    (0x45, 0, 1, IPS_SRC_NAT),    # jset #IPS_SRC_NAT, keep, drop
    (0x06, 0, 0, 0xFFFFFFFF),     # keep: ret #-1
    (0x06, 0, 0, 0),              # drop: ret #0
]


def main() -> int:
    if len(sys.argv) < 4:
        print('usage: ct-event-socket.py PID BYTES FD...', file=sys.stderr)
        return 1
    pid, size, fds = int(sys.argv[1]), int(sys.argv[2]), [int(a) for a in sys.argv[3:]]
    libc = ctypes.CDLL(None, use_errno=True)
    code = ctypes.create_string_buffer(b''.join(struct.pack('HBBI', *i) for i in SNAT_FILTER))
    prog = struct.pack('HP', len(SNAT_FILTER), ctypes.addressof(code))  # struct sock_fprog (native alignment pads the pointer)
    pidfd = os.pidfd_open(pid)
    rcvbuf = None
    try:
        for target in fds:
            fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, target, 0)
            if fd < 0:
                print(f'pidfd_getfd of fd {target}: {os.strerror(ctypes.get_errno())}', file=sys.stderr)
                return 1
            with socket.socket(fileno=fd) as s:
                if size > 0:
                    s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
                s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)
                if rcvbuf is None:
                    rcvbuf = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    finally:
        os.close(pidfd)
    print(json.dumps({'rcvbuf': rcvbuf, 'filter': 'snat'}))
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (OSError, ValueError) as e:
        print(e, file=sys.stderr)
        sys.exit(1)
