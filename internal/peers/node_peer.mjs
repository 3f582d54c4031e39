// node_peer.mjs: a WebSocket interop peer on the Node `ws` library, driven
// by the Go test helper in peers.go. It speaks a JSON-lines protocol: events
// on stdout (one JSON object per line), commands on stdin (client mode).
//
//   node node_peer.mjs server [--protocols a,b] [--compression]
//   node node_peer.mjs client --url URL [--protocols a,b] [--compression]
//
// Server: listens on 127.0.0.1 port 0 and prints {"event":"listening","port":N};
// echoes every message with its type, except a text message
// "close:<code>:<reason>", which closes the connection with that code and
// reason ("close:" or "close::" closes without a status code). Per connection
// it prints {"event":"open",...} and {"event":"close","code":N,"reason":"..."}
// with the code and reason received from the client (1005 = no status,
// 1006 = no close frame).
//
// Client: prints {"event":"open","protocol":"...","extensions":"..."}, then
// {"event":"message","type":"text"|"binary","data":"<base64>"} per message
// and {"event":"close",...} at the end, then exits 0. It reads commands from
// stdin: {"op":"send","type":"text"|"binary","data":"<base64>"} and
// {"op":"close","code":N,"reason":"..."} (no code = close without status).
// A failed connection prints {"event":"error","message":"..."} and exits 1;
// an error after open prints the error event and is followed by the close
// event as usual.
//
// "extensions" is the Sec-WebSocket-Extensions header of the handshake
// response, as sent (server) or received (client); "" when absent.

import process from 'node:process';
import readline from 'node:readline';
import { WebSocket, WebSocketServer } from 'ws';

const maxPayload = 64 << 20;

function emit(obj) {
  // Writes to pipes are synchronous on Linux, so each line is out before the
  // next statement runs; no buffering to flush.
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function fail(message) {
  process.stderr.write(`node_peer: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { mode: argv[0], protocols: [], compression: false, url: '' };
  for (let i = 1; i < argv.length; i++) {
    switch (argv[i]) {
      case '--protocols':
        opts.protocols = (argv[++i] ?? '').split(',').filter((p) => p !== '');
        break;
      case '--compression':
        opts.compression = true;
        break;
      case '--url':
        opts.url = argv[++i] ?? '';
        break;
      default:
        fail(`unknown argument ${JSON.stringify(argv[i])}`);
    }
  }
  return opts;
}

// deflateOptions compresses every message, however small: ws's default
// threshold (1024 bytes) would send short messages uncompressed.
function deflateOptions(enabled) {
  return enabled ? { threshold: 0 } : false;
}

function closeEvent(code, reason) {
  return { event: 'close', code, reason: reason.toString('utf8') };
}

function runServer(opts) {
  const offered = new Set(opts.protocols);
  const responseExtensions = new WeakMap(); // request -> header value
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    maxPayload,
    perMessageDeflate: deflateOptions(opts.compression),
    // Without handleProtocols ws picks the client's first protocol whatever
    // it is, so always decide here: the first client protocol we support.
    handleProtocols: (protocols) => {
      for (const p of protocols) {
        if (offered.has(p)) return p;
      }
      return false;
    },
  });
  wss.on('headers', (headers, req) => {
    const line = headers.find((h) => /^sec-websocket-extensions:/i.test(h));
    responseExtensions.set(req, line ? line.slice(line.indexOf(':') + 1).trim() : '');
  });
  wss.on('listening', () => emit({ event: 'listening', port: wss.address().port }));
  wss.on('error', (err) => fail(`server: ${err.message}`));
  wss.on('connection', (ws, req) => {
    emit({ event: 'open', protocol: ws.protocol, extensions: responseExtensions.get(req) ?? '' });
    ws.on('error', (err) => emit({ event: 'error', message: err.message }));
    ws.on('close', (code, reason) => emit(closeEvent(code, reason)));
    ws.on('message', (data, isBinary) => {
      if (!isBinary) {
        const text = data.toString('utf8');
        if (text.startsWith('close:')) {
          const rest = text.slice('close:'.length);
          const colon = rest.indexOf(':');
          const code = colon < 0 ? rest : rest.slice(0, colon);
          const reason = colon < 0 ? '' : rest.slice(colon + 1);
          try {
            if (code === '') ws.close();
            else ws.close(Number(code), reason);
          } catch (err) {
            emit({ event: 'error', message: err.message });
          }
          return;
        }
      }
      ws.send(data, { binary: isBinary });
    });
  });
}

function runClient(opts) {
  if (opts.url === '') fail('client needs --url');
  let opened = false;
  let extensions = '';
  const pending = []; // command lines received before open
  let ws;
  try {
    ws = new WebSocket(opts.url, opts.protocols, {
      maxPayload,
      perMessageDeflate: deflateOptions(opts.compression),
    });
  } catch (err) {
    emit({ event: 'error', message: err.message }); // a malformed URL
    process.exit(1);
  }
  ws.on('upgrade', (res) => {
    extensions = res.headers['sec-websocket-extensions'] ?? '';
  });
  ws.on('open', () => {
    opened = true;
    emit({ event: 'open', protocol: ws.protocol, extensions });
    for (const line of pending.splice(0)) run(line);
  });
  ws.on('message', (data, isBinary) => {
    emit({ event: 'message', type: isBinary ? 'binary' : 'text', data: data.toString('base64') });
  });
  ws.on('error', (err) => {
    emit({ event: 'error', message: err.message });
    if (!opened) process.exit(1);
  });
  ws.on('close', (code, reason) => {
    emit(closeEvent(code, reason));
    process.exit(0);
  });

  // Commands that arrive before the handshake completes wait in pending. On
  // end of input the process keeps running until the connection closes: the
  // open socket keeps the event loop alive.
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  rl.on('line', (line) => {
    if (line.trim() === '') return;
    if (opened) run(line);
    else pending.push(line);
  });
  function run(line) {
    try {
      const cmd = JSON.parse(line);
      switch (cmd.op) {
        case 'send':
          ws.send(Buffer.from(cmd.data ?? '', 'base64'), { binary: cmd.type === 'binary' });
          break;
        case 'close':
          if (cmd.code === undefined || cmd.code === null || cmd.code === 0) ws.close();
          else ws.close(cmd.code, cmd.reason ?? '');
          break;
        default:
          throw new Error(`unknown op ${JSON.stringify(cmd.op)}`);
      }
    } catch (err) {
      emit({ event: 'error', message: `command: ${err.message}` });
    }
  }
}

const opts = parseArgs(process.argv.slice(2));
switch (opts.mode) {
  case 'server':
    runServer(opts);
    break;
  case 'client':
    runClient(opts);
    break;
  default:
    fail('usage: node_peer.mjs server|client [--url URL] [--protocols a,b] [--compression]');
}
