"""Only the user who owns the daemon may talk to it.

The socket is already 0600 in a 0700 directory; the SO_PEERCRED check is the
second wall, in case permissions were loosened by hand (or root connects:
root is refused too, so a root-run tool never drives a user's daemon).
"""

from __future__ import annotations

import logging
import os
import socket
import struct

from rpyc.utils.authenticators import AuthenticationError

log = logging.getLogger("cidx_daemon.peer")
_UCRED = struct.Struct("3i")  # struct ucred { pid_t pid; uid_t uid; gid_t gid; }


def peer_allowed(peer_uid: int, own_uid: int) -> bool:
    """Same uid only."""
    return peer_uid == own_uid


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return pid, uid, gid


class PeerUidAuthenticator:
    """rpyc authenticator: callable(sock) -> (sock, credentials) or AuthenticationError."""

    def __init__(self, own_uid: int | None = None) -> None:
        self.own_uid = os.geteuid() if own_uid is None else own_uid

    def __call__(self, sock: socket.socket) -> tuple[socket.socket, dict[str, int]]:
        try:
            pid, uid, gid = peer_credentials(sock)
        except OSError as exc:
            raise AuthenticationError(f"cannot read peer credentials: {exc}") from None
        if not peer_allowed(uid, self.own_uid):
            log.warning("refused a connection from uid %d (pid %d): not the owner uid %d",
                        uid, pid, self.own_uid)
            raise AuthenticationError(f"peer uid {uid} (pid {pid}) is not {self.own_uid}")
        return sock, {"pid": pid, "uid": uid, "gid": gid}
