// An echo server on Node's ws library (the version in the repository's
// package-lock.json), for scripts/bench-peers: every message is sent back
// with the same type. ws's defaults are conformant: text messages are
// checked for UTF-8 (skipUTF8Validation: false), pings are answered with
// pongs (autoPong: true), and permessage-deflate is off here as on the Go
// servers. Prints "listening HOST:PORT" once the port is open; SIGTERM or
// SIGINT exits.
//
//   node bench/peers/node/echo.mjs [HOST:PORT]    (default 127.0.0.1:0)
import { WebSocketServer } from 'ws';

const [host, port] = (process.argv[2] ?? '127.0.0.1:0').split(/:(?=[^:]*$)/);
const wss = new WebSocketServer({ host, port: Number(port), perMessageDeflate: false });
wss.on('listening', () => {
  const a = wss.address();
  console.log(`listening ${a.address}:${a.port}`);
});
wss.on('error', (err) => {
  console.error(`node-ws: ${err.message}`);
  process.exit(1);
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
