"""python_peer.py: a WebSocket interop peer on Python websockets (10.x legacy
asyncio API, as shipped by Debian bookworm), driven by the Go test helper in
peers.go. Same modes and JSON-lines protocol as node_peer.mjs:

    /usr/bin/python3 python_peer.py server [--protocols a,b] [--compression]
    /usr/bin/python3 python_peer.py client --url URL [--protocols a,b] [--compression]

Server: listens on 127.0.0.1 port 0 and prints {"event":"listening","port":N};
echoes every message with its type, except a text message
"close:<code>:<reason>", which closes the connection with that code and reason
("close:" or "close::" closes without a status code). Per connection it prints
{"event":"open",...} and {"event":"close","code":N,"reason":"..."} with the
code and reason received from the client (1005 = no status, 1006 = no close
frame).

Client: prints {"event":"open","protocol":"...","extensions":"..."}, then
{"event":"message","type":"text"|"binary","data":"<base64>"} per message and
{"event":"close",...} at the end, then exits 0. It reads commands from stdin:
{"op":"send","type":"text"|"binary","data":"<base64>"} and
{"op":"close","code":N,"reason":"..."} (no code = close without status). A
failed connection prints {"event":"error","message":"..."} and exits 1.

"extensions" is the Sec-WebSocket-Extensions header of the handshake response,
as sent (server) or received (client); "" when absent.

Keepalive pings are off (ping_interval=None) so that the peer sends only what
the test asks for.
"""

import argparse
import asyncio
import base64
import json
import sys

import websockets
from websockets.frames import Close

MAX_SIZE = 64 * 1024 * 1024


def emit(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def extensions_of(ws):
    return ws.response_headers.get("Sec-WebSocket-Extensions", "") or ""


def close_event(ws):
    # close_code is 1005 when the close frame had no status and 1006 when no
    # close frame arrived; it is only set once the connection is CLOSED.
    code = ws.close_code if ws.close_code is not None else 1006
    return {"event": "close", "code": code, "reason": ws.close_reason or ""}


async def close(ws, code, reason):
    """Close with code and reason, or without a status code when code is 0.

    websockets' public close() always sends a status code (default 1000), so
    a close without status goes through write_close_frame with an empty
    payload and then waits for the closing handshake as close() does.
    """
    if code:
        await ws.close(code, reason)
        return
    try:
        await asyncio.wait_for(ws.write_close_frame(Close(1005, ""), b""), ws.close_timeout)
    except asyncio.TimeoutError:
        ws.fail_connection()
    try:
        await asyncio.wait_for(ws.transfer_data_task, ws.close_timeout)
    except (asyncio.TimeoutError, asyncio.CancelledError):
        pass
    await asyncio.shield(ws.close_connection_task)


def select_first_offered(client_protocols, server_protocols):
    # websockets' default picks the protocol with the lowest sum of client and
    # server list positions; the peers pick the client's first supported one.
    for p in client_protocols:
        if p in server_protocols:
            return p
    return None


async def serve(args):
    async def handler(ws, path=None):
        emit({"event": "open", "protocol": ws.subprotocol or "", "extensions": extensions_of(ws)})
        try:
            async for msg in ws:
                if isinstance(msg, str) and msg.startswith("close:"):
                    code, _, reason = msg[len("close:"):].partition(":")
                    try:
                        await close(ws, int(code) if code else 0, reason)
                    except Exception as e:  # invalid code: report, keep going
                        emit({"event": "error", "message": str(e)})
                        continue
                    break
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass
        await ws.wait_closed()
        emit(close_event(ws))

    server = await websockets.serve(
        handler,
        "127.0.0.1",
        0,
        subprotocols=args.protocols or None,
        select_subprotocol=select_first_offered,
        compression="deflate" if args.compression else None,
        max_size=MAX_SIZE,
        ping_interval=None,
    )
    emit({"event": "listening", "port": server.sockets[0].getsockname()[1]})
    await server.wait_closed()
    return 0


async def stdin_lines():
    """Yields lines of standard input without blocking the event loop."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2 * MAX_SIZE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    while True:
        line = await reader.readline()
        if not line:
            return
        yield line


async def pump_commands(ws):
    async for line in stdin_lines():
        if not line.strip():
            continue
        try:
            cmd = json.loads(line)
            op = cmd.get("op")
            if op == "send":
                data = base64.b64decode(cmd.get("data") or "")
                if cmd.get("type") == "binary":
                    await ws.send(data)
                else:
                    await ws.send(data.decode("utf-8"))
            elif op == "close":
                await close(ws, cmd.get("code") or 0, cmd.get("reason") or "")
            else:
                raise ValueError(f"unknown op {op!r}")
        except websockets.ConnectionClosed:
            return
        except Exception as e:
            emit({"event": "error", "message": f"command: {e}"})
    # End of input: keep running until the connection closes.


async def client(args):
    try:
        ws = await websockets.connect(
            args.url,
            subprotocols=args.protocols or None,
            compression="deflate" if args.compression else None,
            max_size=MAX_SIZE,
            ping_interval=None,
            open_timeout=30,
        )
    except Exception as e:
        emit({"event": "error", "message": f"{type(e).__name__}: {e}"})
        return 1
    emit({"event": "open", "protocol": ws.subprotocol or "", "extensions": extensions_of(ws)})
    pump = asyncio.create_task(pump_commands(ws))
    try:
        async for msg in ws:
            if isinstance(msg, str):
                typ, data = "text", msg.encode("utf-8")
            else:
                typ, data = "binary", msg
            emit({"event": "message", "type": typ, "data": base64.b64encode(data).decode("ascii")})
    except websockets.ConnectionClosed:
        pass
    await ws.wait_closed()
    emit(close_event(ws))
    pump.cancel()
    return 0


def main():
    parser = argparse.ArgumentParser(prog="python_peer.py")
    parser.add_argument("mode", choices=["server", "client"])
    parser.add_argument("--url", default="")
    parser.add_argument("--protocols", default="", type=lambda s: [p for p in s.split(",") if p])
    parser.add_argument("--compression", action="store_true")
    args = parser.parse_args()
    if args.mode == "server":
        return asyncio.run(serve(args))
    if not args.url:
        parser.error("client needs --url")
    return asyncio.run(client(args))


if __name__ == "__main__":
    sys.exit(main())
