"""A WebSocket client by hand, for tests that must misbehave at the byte level: stop reading, drop
the TCP connection mid-stream, flood pings, send what no library would."""

from __future__ import annotations

import base64
import os
import socket
import struct

OPCODE_TEXT, OPCODE_BINARY, OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def handshake(
    port: int, path: str, *, headers: dict[str, str] | None = None, receive_buffer_bytes: int | None = None
) -> tuple[socket.socket, bytes, bytes]:
    """Open a WebSocket to ``path`` on loopback; return the socket, the server's answer head (its
    status line and headers) and whatever of the stream came with it."""
    peer = socket.socket()
    if receive_buffer_bytes is not None:
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer_bytes)  # before connecting: the window
    peer.settimeout(10)
    peer.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    peer.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n".encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = peer.recv(4096)
        if not chunk:
            break
        answer += chunk
    head, _, stream = answer.partition(b"\r\n\r\n")
    return peer, head, stream


def client_frame(opcode: int, payload: bytes = b"") -> bytes:
    """Return one masked frame as a client must send it."""
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return header + mask + masked


def frames_in(stream: bytes) -> list[tuple[int, bytes]]:
    """Return the server's (unmasked) frames in a byte stream as (opcode, payload); a frame cut
    short at the end is left out."""
    frames, offset = [], 0
    while offset + 2 <= len(stream):
        opcode, length = stream[offset] & 0x0F, stream[offset + 1] & 0x7F
        offset += 2
        if length == 126:
            length, offset = struct.unpack("!H", stream[offset : offset + 2])[0], offset + 2
        elif length == 127:
            length, offset = struct.unpack("!Q", stream[offset : offset + 8])[0], offset + 8
        if offset + length > len(stream):
            break
        frames.append((opcode, stream[offset : offset + length]))
        offset += length
    return frames


def close_of(frames: list[tuple[int, bytes]]) -> tuple[int, str] | None:
    """Return the code and reason of the close frame among ``frames``, if one came."""
    for opcode, payload in frames:
        if opcode == OPCODE_CLOSE and len(payload) >= 2:
            return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")
    return None


def read_until_closed(peer: socket.socket, stream: bytes = b"", *, timeout_s: float = 10) -> bytes:
    """Read until the server's close frame arrives or the connection ends; return everything."""
    peer.settimeout(timeout_s)
    try:
        while close_of(frames_in(stream)) is None:
            chunk = peer.recv(65536)
            if not chunk:
                break
            stream += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return stream


def abort(peer: socket.socket) -> None:
    """Drop the TCP connection with a reset, no close frame: a phone gone off the air mid-message."""
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()
