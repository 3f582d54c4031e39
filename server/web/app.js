// The "Work with WebSockets" recipe's app as a page: connect to a WebSocket
// server, send what is typed in "Send a message", show the latest message
// the server sent. Around it: the connection state, a time-stamped log,
// a URL field with connect/disconnect, automatic reconnect with capped
// exponential backoff and jitter, and the terminal commands for the same
// URL. English and Simplified Chinese come from the table below.
//
// Everything received is written with textContent, never as HTML.

// messages holds every string the page shows, per language. A value is a
// string or a function of named parameters.
export const messages = {
  en: {
    title: 'WebSocket Demo',
    language: 'Language',
    appHeading: 'Send and receive',
    messageLabel: 'Send a message',
    send: 'Send',
    sendTooltip: 'Send message',
    sendBinary: 'Send as binary',
    sendHint: 'Enter sends. Empty text is not sent.',
    latestHeading: 'Latest message',
    noMessages: 'No messages yet',
    emptyMessage: '(empty message)',
    connectionHeading: 'Connection',
    urlLabel: 'Server URL',
    connect: 'Connect',
    disconnect: 'Disconnect',
    commandsHint: 'Reach the same URL from a terminal:',
    copy: 'Copy',
    copyWschan: 'Copy the wschan command',
    copyWscat: 'Copy the wscat command',
    copied: 'Copied to the clipboard.',
    copyFailed: 'Could not copy: the command is selected, press Ctrl+C (⌘C on a Mac).',
    logHeading: 'Message log',
    clearLog: 'Clear',
    logEmpty: 'Nothing sent or received yet.',
    endpointsHeading: 'Server endpoints',
    endpointEcho: 'echoes every message back unchanged: same type, same bytes, in order',
    endpointHealth: 'liveness; readiness (503 while draining)',
    endpointMetrics: 'Prometheus metrics',
    noscript: 'This page needs JavaScript to open a WebSocket.',
    stateStarting: 'Starting…',
    stateConnecting: ({ url }) => `Connecting to ${url}…`,
    stateOpen: ({ url }) => `Open: ${url}`,
    stateClosing: 'Closing…',
    stateClosed: 'Closed',
    stateClosedWith: ({ close }) => `Closed: ${close}`,
    stateRetryWait: ({ seconds, attempt, close }) => `Reconnecting in ${seconds} s (attempt ${attempt}): ${close}`,
    stateRetrying: ({ attempt }) => `Reconnecting (attempt ${attempt})…`,
    closeInfo: ({ code, name, reason }) =>
      `code ${code}` + (name ? ` (${name})` : '') + (reason ? `, reason “${reason}”` : ''),
    closeFailed: 'could not connect',
    codeNames: {
      1000: 'normal closure', 1001: 'going away', 1002: 'protocol error',
      1003: 'unsupported data', 1005: 'no status code', 1006: 'connection lost',
      1007: 'invalid data', 1008: 'policy violation', 1009: 'message too big',
      1010: 'missing extension', 1011: 'server error', 1012: 'service restart',
      1013: 'try again later', 1014: 'bad gateway', 1015: 'TLS handshake failed',
    },
    dirSent: 'sent',
    dirReceived: 'received',
    dirEvent: 'event',
    kindText: 'text',
    kindBinary: ({ n }) => `binary, ${n} ${n === 1 ? 'byte' : 'bytes'}`,
    evOpen: ({ url, protocol }) => `connected to ${url}` + (protocol ? ` (subprotocol ${protocol})` : ''),
    evClose: ({ close }) => `closed: ${close}`,
    receivedAt: ({ time }) => `received at ${time}`,
    errScheme: 'Enter a ws:// or wss:// URL.',
    errBadUrl: ({ url }) => `Not a valid WebSocket URL: ${url}`,
    errNotOpen: 'Not connected: connect first, then send.',
    errSend: ({ error }) => `Could not send: ${error}`,
    roomLabel: 'Room name',
    joinRoom: 'Join room',
    roomHint: 'Everyone in the room sees every message, with who sent it.',
    errRoomName: 'A room name is 1 to 64 letters, digits, - or _.',
    roomStatus: ({ room, n }) => `Room ${room}: ${n} ${n === 1 ? 'member' : 'members'}`,
    fromWho: ({ who }) => `from ${who}`,
    fromYou: 'you',
    fromServer: 'the server',
    evWelcome: ({ room, me, n }) => `joined room ${room} as ${me} (${n} ${n === 1 ? 'member' : 'members'})`,
    evJoined: ({ member, n }) => `${member} joined (${n} ${n === 1 ? 'member' : 'members'})`,
    evLeft: ({ member, n }) => `${member} left (${n} ${n === 1 ? 'member' : 'members'})`,
    evGap: ({ from, to }) => (to ? `messages ${from} to ${to} were missed and are gone` : 'messages were missed while away and are gone'),
    evRoomError: ({ error }) => `the server refused: ${error}`,
  },
  'zh-CN': {
    title: 'WebSocket 演示',
    language: '语言',
    appHeading: '发送和接收',
    messageLabel: '发送一条消息',
    send: '发送',
    sendTooltip: '发送消息',
    sendBinary: '以二进制发送',
    sendHint: '按回车发送。空消息不会发送。',
    latestHeading: '最新消息',
    noMessages: '还没有消息',
    emptyMessage: '（空消息）',
    connectionHeading: '连接',
    urlLabel: '服务器 URL',
    connect: '连接',
    disconnect: '断开',
    commandsHint: '在终端里连接同一个 URL：',
    copy: '复制',
    copyWschan: '复制 wschan 命令',
    copyWscat: '复制 wscat 命令',
    copied: '已复制到剪贴板。',
    copyFailed: '无法复制：命令已选中，请按 Ctrl+C（Mac 上为 ⌘C）。',
    logHeading: '消息记录',
    clearLog: '清空',
    logEmpty: '还没有发送或接收任何消息。',
    endpointsHeading: '服务器端点',
    endpointEcho: '原样返回每条消息：类型相同、字节相同、顺序不变',
    endpointHealth: '存活检查；就绪检查（排空时返回 503）',
    endpointMetrics: 'Prometheus 指标',
    noscript: '此页面需要 JavaScript 才能打开 WebSocket。',
    stateStarting: '正在启动…',
    stateConnecting: ({ url }) => `正在连接 ${url}…`,
    stateOpen: ({ url }) => `已连接：${url}`,
    stateClosing: '正在关闭…',
    stateClosed: '已关闭',
    stateClosedWith: ({ close }) => `已关闭：${close}`,
    stateRetryWait: ({ seconds, attempt, close }) => `${seconds} 秒后重新连接（第 ${attempt} 次）：${close}`,
    stateRetrying: ({ attempt }) => `正在重新连接（第 ${attempt} 次）…`,
    closeInfo: ({ code, name, reason }) =>
      `代码 ${code}` + (name ? `（${name}）` : '') + (reason ? `，原因“${reason}”` : ''),
    closeFailed: '无法连接',
    codeNames: {
      1000: '正常关闭', 1001: '对方离开', 1002: '协议错误',
      1003: '不支持的数据', 1005: '没有状态码', 1006: '连接中断',
      1007: '无效数据', 1008: '违反策略', 1009: '消息过大',
      1010: '缺少扩展', 1011: '服务器错误', 1012: '服务重启',
      1013: '请稍后重试', 1014: '网关错误', 1015: 'TLS 握手失败',
    },
    dirSent: '已发送',
    dirReceived: '已接收',
    dirEvent: '事件',
    kindText: '文本',
    kindBinary: ({ n }) => `二进制，${n} 字节`,
    evOpen: ({ url, protocol }) => `已连接到 ${url}` + (protocol ? `（子协议 ${protocol}）` : ''),
    evClose: ({ close }) => `已关闭：${close}`,
    receivedAt: ({ time }) => `接收于 ${time}`,
    errScheme: '请输入 ws:// 或 wss:// 开头的 URL。',
    errBadUrl: ({ url }) => `不是有效的 WebSocket URL：${url}`,
    errNotOpen: '尚未连接：请先连接，再发送。',
    errSend: ({ error }) => `发送失败：${error}`,
    roomLabel: '房间名',
    joinRoom: '加入房间',
    roomHint: '房间里的每个人都能看到每条消息以及发送者。',
    errRoomName: '房间名须为 1 到 64 个字母、数字、- 或 _。',
    roomStatus: ({ room, n }) => `房间 ${room}：${n} 位成员`,
    fromWho: ({ who }) => `来自 ${who}`,
    fromYou: '你',
    fromServer: '服务器',
    evWelcome: ({ room, me, n }) => `以 ${me} 的身份加入房间 ${room}（${n} 位成员）`,
    evJoined: ({ member, n }) => `${member} 加入了（${n} 位成员）`,
    evLeft: ({ member, n }) => `${member} 离开了（${n} 位成员）`,
    evGap: ({ from, to }) => (to ? `第 ${from} 到 ${to} 条消息在离开期间错过，已无法找回` : '离开期间错过的消息已无法找回'),
    evRoomError: ({ error }) => `服务器拒绝：${error}`,
  },
};

// Reconnect policy, as in the Go library's reconnect: attempt n waits
// about MIN_DELAY·2^(n-1), at most MAX_DELAY, drawn from [d/2, d].
export const MIN_DELAY = 250;
export const MAX_DELAY = 30000;
// A connection that stayed open this long resets the attempt count, so a
// server that accepts and drops at once is not hammered.
const STABLE_MS = 5000;
// Close codes that mean "try again": going away, connection lost, server
// error, restart, try again later, bad gateway. Any other close (normal
// closure, policy, too big, an application code) is final.
const RETRY_CODES = new Set([1001, 1006, 1011, 1012, 1013, 1014]);
const LOG_MAX = 200;
const HEX_MAX = 64;

// backoffDelay returns the wait in ms before reconnect attempt n (n ≥ 1).
export function backoffDelay(n, rand = Math.random) {
  let d = MIN_DELAY;
  for (let i = 1; i < n && d < MAX_DELAY; i++) d *= 2;
  d = Math.min(d, MAX_DELAY);
  return d / 2 + rand() * (d / 2);
}

// hex formats bytes as "68 69", eliding after max bytes.
export function hex(bytes, max = HEX_MAX) {
  const parts = [];
  for (let i = 0; i < bytes.length && i < max; i++) parts.push(bytes[i].toString(16).padStart(2, '0'));
  return parts.join(' ') + (bytes.length > max ? ' …' : '');
}

// shellQuote quotes s for a POSIX shell when it needs it.
export function shellQuote(s) {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return "'" + s.replaceAll("'", "'\\''") + "'";
}

// pickLanguage returns the first supported language in the browser's
// preference list: any Chinese picks Simplified Chinese; default English.
export function pickLanguage(langs) {
  for (const l of langs || []) {
    if (/^zh\b/i.test(l)) return 'zh-CN';
    if (/^en\b/i.test(l)) return 'en';
  }
  return 'en';
}

// ROOM_PROTOCOL is the subprotocol of the server's room envelopes.
export const ROOM_PROTOCOL = 'wschan.room.v1';

// validRoom reports whether name can name a room on the server.
export function validRoom(name) {
  return /^[A-Za-z0-9_-]{1,64}$/.test(name);
}

// roomURL is the room's URL on the server of base (a ws:// or wss:// URL).
export function roomURL(base, name) {
  const u = new URL(base);
  u.pathname = '/ws/room/' + name;
  u.search = '';
  return u.href;
}

// fromBase64 decodes base64 to bytes.
export function fromBase64(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// defaultURL is this server's own echo endpoint, wss on an https page.
export function defaultURL(loc) {
  if (!loc.host) return 'ws://127.0.0.1:8080/ws';
  return (loc.protocol === 'https:' ? 'wss://' : 'ws://') + loc.host + '/ws';
}

// checkURL returns null for a usable WebSocket URL, else an error key and
// its parameters.
export function checkURL(s) {
  let u;
  try {
    u = new URL(s);
  } catch {
    return { key: 'errBadUrl', params: { url: s } };
  }
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') return { key: 'errScheme' };
  if (u.hash) return { key: 'errBadUrl', params: { url: s } };
  return null;
}

function clock(d) {
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function main() {
  const $ = (id) => document.getElementById(id);
  const el = {
    lang: $('lang'), sendForm: $('send-form'), message: $('message'), sendBinary: $('send-binary'),
    sendError: $('send-error'), latestMeta: $('latest-meta'), latestBody: $('latest-body'),
    state: $('state'), stateText: $('state-text'), connectForm: $('connect-form'), url: $('url'),
    disconnect: $('disconnect'), connectError: $('connect-error'), cmdWschan: $('cmd-wschan'),
    cmdWscat: $('cmd-wscat'), copyStatus: $('copy-status'), log: $('log'), logEmpty: $('log-empty'),
    clearLog: $('clear-log'), roomForm: $('room-form'), room: $('room'), roomError: $('room-error'),
    roomStatus: $('room-status'),
  };

  const app = {
    lang: 'en',
    ws: null,
    url: defaultURL(location),
    state: { name: 'closed', key: 'stateClosed', params: {} },
    attempt: 0,
    timer: null,
    openedAt: 0,
    userClosed: false,
    latest: null, // the last received entry
    log: [], // entries: {dir, kind, data, at} or {dir: 'event', key, params, at}
    errors: { send: null, connect: null, room: null }, // {key, params}
    // Room mode: {name, me, members, epoch, seq}; the position lets a
    // reconnect resume where the page left off.
    room: null,
  };

  function t(key, params = {}) {
    const v = messages[app.lang][key] ?? messages.en[key] ?? key;
    return typeof v === 'function' ? v(params) : v;
  }

  // closeText describes a close event; failed means it never opened.
  function closeText(c) {
    if (c.failed) return t('closeFailed');
    return t('closeInfo', { code: c.code, name: messages[app.lang].codeNames[c.code], reason: c.reason });
  }

  // Rendering: every visible string is derived from app state, so a
  // language switch re-renders everything.

  function renderStatic() {
    document.documentElement.lang = app.lang;
    document.title = t('title');
    for (const n of document.querySelectorAll('[data-i18n]')) {
      if (n.id === 'latest-body' || n.id === 'state-text') continue;
      n.textContent = t(n.dataset.i18n);
    }
    for (const n of document.querySelectorAll('[data-i18n-title]')) n.title = t(n.dataset.i18nTitle);
    for (const n of document.querySelectorAll('[data-i18n-aria-label]')) n.setAttribute('aria-label', t(n.dataset.i18nAriaLabel));
    el.lang.value = app.lang;
  }

  function renderState() {
    const s = app.state;
    const params = { ...s.params };
    if (params.close) params.close = closeText(params.close);
    el.state.dataset.state = s.name;
    el.stateText.textContent = t(s.key, params);
    el.disconnect.disabled = s.name === 'closed';
  }

  function renderError(which) {
    const e = app.errors[which];
    const node = { send: el.sendError, connect: el.connectError, room: el.roomError }[which];
    node.textContent = e ? t(e.key, e.params) : '';
    const input = { send: el.message, connect: el.url, room: el.room }[which];
    if (e) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }

  function renderLatest() {
    const m = app.latest;
    el.latestBody.classList.remove('binary', 'empty');
    if (!m) {
      el.latestMeta.textContent = '';
      el.latestBody.textContent = t('noMessages');
      el.latestBody.classList.add('empty');
      delete el.latestBody.dataset.kind;
      return;
    }
    const kind = m.kind === 'binary' ? t('kindBinary', { n: m.data.length }) : t('kindText');
    const from = 'from' in m ? ` · ${fromText(m)}` : '';
    el.latestMeta.textContent = `${kind}${from} · ${t('receivedAt', { time: clock(m.at) })}`;
    el.latestBody.dataset.kind = m.kind;
    if (m.kind === 'binary') {
      el.latestBody.classList.add('binary');
      el.latestBody.textContent = hex(m.data);
    } else if (m.data === '') {
      el.latestBody.classList.add('empty');
      el.latestBody.textContent = t('emptyMessage');
    } else {
      el.latestBody.textContent = m.data;
    }
  }

  // fromText names a room message's sender.
  function fromText(e) {
    return t('fromWho', { who: e.fromMe ? t('fromYou') : e.from || t('fromServer') });
  }

  function renderRoom() {
    const r = app.room;
    el.roomStatus.textContent = r && r.me ? t('roomStatus', { room: r.name, n: r.members }) : '';
  }

  function logItem(e) {
    const li = document.createElement('li');
    li.className = `entry ${e.dir}`;
    li.dataset.dir = e.dir;
    const time = document.createElement('time');
    time.dateTime = e.at.toISOString();
    time.textContent = clock(e.at);
    const dir = document.createElement('span');
    dir.className = 'dir';
    dir.textContent = t({ sent: 'dirSent', received: 'dirReceived', event: 'dirEvent' }[e.dir]);
    li.append(time, ' ', dir, ' ');
    const body = document.createElement('span');
    body.className = 'body';
    if (e.dir === 'event') {
      const params = { ...e.params };
      if (params.close) params.close = closeText(params.close);
      body.textContent = t(e.key, params);
    } else {
      li.dataset.kind = e.kind;
      li.classList.add(e.kind);
      const kind = document.createElement('span');
      kind.className = 'kind';
      kind.textContent = e.kind === 'binary' ? t('kindBinary', { n: e.data.length }) : t('kindText');
      li.append(kind, ' ');
      if ('from' in e) {
        const from = document.createElement('span');
        from.className = 'from';
        from.textContent = fromText(e);
        li.append(from, ' ');
      }
      if (e.kind === 'binary') body.textContent = hex(e.data);
      else body.textContent = e.data === '' ? t('emptyMessage') : e.data;
    }
    li.append(body);
    return li;
  }

  function renderLog() {
    el.log.replaceChildren(...app.log.map(logItem));
    el.logEmpty.hidden = app.log.length > 0;
  }

  function renderCommands() {
    const url = el.url.value.trim() || app.url;
    el.cmdWschan.textContent = `wschan connect ${shellQuote(url)}`;
    el.cmdWscat.textContent = `wscat -c ${shellQuote(url)}`;
  }

  function renderAll() {
    renderStatic();
    renderState();
    renderError('send');
    renderError('connect');
    renderError('room');
    renderRoom();
    renderLatest();
    renderLog();
    renderCommands();
  }

  // State changes.

  function setState(name, key, params = {}) {
    app.state = { name, key, params };
    renderState();
  }

  function setError(which, key, params) {
    app.errors[which] = key ? { key, params } : null;
    renderError(which);
  }

  function addEntry(e) {
    e.at = new Date();
    app.log.push(e);
    el.log.append(logItem(e));
    while (app.log.length > LOG_MAX) {
      app.log.shift();
      el.log.firstElementChild?.remove();
    }
    el.logEmpty.hidden = true;
    el.log.scrollTop = el.log.scrollHeight; // the log only: the page stays where the user is
    if (e.dir === 'received') {
      app.latest = e;
      renderLatest();
    }
  }

  // The connection.

  function stop() {
    clearTimeout(app.timer);
    app.timer = null;
    const ws = app.ws;
    app.ws = null;
    if (ws && ws.readyState < WebSocket.CLOSING) ws.close(1000, 'reconnecting');
  }

  // open dials url. retry is the attempt number when reconnecting.
  function open(url, retry = 0) {
    stop();
    app.url = url;
    app.userClosed = false;
    let ws;
    try {
      ws = app.room ? new WebSocket(url, [ROOM_PROTOCOL]) : new WebSocket(url);
    } catch {
      setError('connect', 'errBadUrl', { url });
      setState('closed', 'stateClosed');
      return;
    }
    ws.binaryType = 'arraybuffer';
    app.ws = ws;
    if (retry) setState('reconnecting', 'stateRetrying', { attempt: retry });
    else setState('connecting', 'stateConnecting', { url });

    ws.addEventListener('open', () => {
      if (ws !== app.ws) return;
      app.openedAt = Date.now();
      setError('connect', null);
      setState('open', 'stateOpen', { url });
      addEntry({ dir: 'event', key: 'evOpen', params: { url, protocol: ws.protocol } });
      if (app.room && ws.protocol === ROOM_PROTOCOL) {
        const r = app.room;
        const join = r.epoch !== null ? { type: 'join', epoch: r.epoch, seq: r.seq } : { type: 'join' };
        ws.send(JSON.stringify(join));
      }
    });
    ws.addEventListener('message', (ev) => {
      if (ws !== app.ws) return;
      if (app.room && ws.protocol === ROOM_PROTOCOL && typeof ev.data === 'string') roomEvent(ev.data);
      else if (typeof ev.data === 'string') addEntry({ dir: 'received', kind: 'text', data: ev.data });
      else addEntry({ dir: 'received', kind: 'binary', data: new Uint8Array(ev.data) });
    });
    ws.addEventListener('close', (ev) => {
      if (ws !== app.ws) return;
      app.ws = null;
      const close = { code: ev.code, reason: ev.reason, failed: !app.openedAt };
      if (app.openedAt) {
        addEntry({ dir: 'event', key: 'evClose', params: { close } });
        if (Date.now() - app.openedAt >= STABLE_MS) app.attempt = 0;
      }
      app.openedAt = 0;
      if (!app.userClosed && RETRY_CODES.has(ev.code)) {
        scheduleRetry(close);
      } else {
        app.attempt = 0;
        setState('closed', 'stateClosedWith', { close });
      }
    });
  }

  // roomEvent handles one envelope from the room.
  function roomEvent(text) {
    let ev;
    try {
      ev = JSON.parse(text);
    } catch {
      addEntry({ dir: 'received', kind: 'text', data: text });
      return;
    }
    const r = app.room;
    if (typeof ev.seq === 'number' && (ev.type === 'welcome' || ev.type === 'message')) r.seq = Math.max(r.seq ?? 0, ev.seq);
    switch (ev.type) {
      case 'welcome':
        if (r.epoch !== ev.epoch) r.seq = ev.seq ?? 0;
        r.me = ev.member;
        r.members = ev.members ?? 0;
        r.epoch = ev.epoch ?? '';
        addEntry({ dir: 'event', key: 'evWelcome', params: { room: r.name, me: r.me, n: r.members } });
        break;
      case 'message': {
        const from = ev.from ?? '';
        const fromMe = from !== '' && from === r.me;
        if (typeof ev.text === 'string') addEntry({ dir: 'received', kind: 'text', data: ev.text, from, fromMe });
        else addEntry({ dir: 'received', kind: 'binary', data: fromBase64(ev.binary ?? ''), from, fromMe });
        break;
      }
      case 'join':
      case 'leave':
        r.members = ev.members ?? 0;
        addEntry({ dir: 'event', key: ev.type === 'join' ? 'evJoined' : 'evLeft', params: { member: ev.member, n: r.members } });
        break;
      case 'members': // the count changed without a named join or leave (another instance, a plain client)
        r.members = ev.members ?? r.members;
        break;
      case 'gap':
        addEntry({ dir: 'event', key: 'evGap', params: { from: ev.from_seq ?? 0, to: ev.to_seq ?? 0 } });
        break;
      case 'error':
        addEntry({ dir: 'event', key: 'evRoomError', params: { error: ev.error ?? '' } });
        break;
    }
    renderRoom();
  }

  function joinRoom() {
    const name = el.room.value.trim();
    if (!validRoom(name)) {
      setError('room', 'errRoomName');
      el.room.focus();
      return;
    }
    setError('room', null);
    const base = checkURL(el.url.value.trim()) ? app.url : el.url.value.trim();
    const url = roomURL(base, name);
    el.url.value = url;
    renderCommands();
    app.room = { name, me: null, members: 0, epoch: null, seq: null };
    renderRoom();
    app.attempt = 0;
    open(url);
  }

  function scheduleRetry(close) {
    app.attempt++;
    const attempt = app.attempt;
    const delay = backoffDelay(attempt);
    setState('reconnecting', 'stateRetryWait', { seconds: (delay / 1000).toFixed(1), attempt, close });
    app.timer = setTimeout(() => {
      app.timer = null;
      open(app.url, attempt);
    }, delay);
  }

  function disconnect() {
    app.userClosed = true;
    clearTimeout(app.timer);
    app.timer = null;
    app.attempt = 0;
    if (app.ws && app.ws.readyState < WebSocket.CLOSING) {
      setState('closing', 'stateClosing');
      app.ws.close(1000, 'bye');
    } else {
      app.ws = null;
      setState('closed', 'stateClosed');
    }
  }

  function send(kind) {
    const text = el.message.value;
    if (text === '') {
      el.message.focus();
      return; // as in the recipe: only non-empty text is sent
    }
    if (!app.ws || app.ws.readyState !== WebSocket.OPEN) {
      setError('send', 'errNotOpen');
      return;
    }
    const data = kind === 'binary' ? new TextEncoder().encode(text) : text;
    // In a room, text goes in a message command; binary goes as it is.
    const wire = app.room && app.ws.protocol === ROOM_PROTOCOL && kind === 'text' ? JSON.stringify({ type: 'message', text }) : data;
    try {
      app.ws.send(wire);
    } catch (err) {
      setError('send', 'errSend', { error: String(err) });
      return;
    }
    setError('send', null);
    addEntry({ dir: 'sent', kind, data });
    el.message.value = '';
    el.message.focus();
  }

  async function copy(target, button) {
    const text = target.textContent;
    try {
      await navigator.clipboard.writeText(text);
      el.copyStatus.textContent = t('copied');
    } catch {
      getSelection()?.selectAllChildren(target);
      el.copyStatus.textContent = t('copyFailed');
    }
    button.focus();
  }

  function setLang(lang) {
    app.lang = messages[lang] ? lang : 'en';
    renderAll();
  }

  // Wiring.

  el.sendForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    send('text');
  });
  el.sendBinary.addEventListener('click', () => send('binary'));
  el.message.addEventListener('input', () => {
    if (app.errors.send) setError('send', null);
  });
  el.connectForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const url = el.url.value.trim();
    const bad = checkURL(url);
    if (bad) {
      setError('connect', bad.key, bad.params);
      el.url.focus();
      return;
    }
    setError('connect', null);
    app.attempt = 0;
    app.room = null;
    renderRoom();
    open(url);
  });
  el.roomForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    joinRoom();
  });
  el.room.addEventListener('input', () => {
    if (app.errors.room) setError('room', null);
  });
  el.url.addEventListener('input', renderCommands);
  el.disconnect.addEventListener('click', disconnect);
  el.clearLog.addEventListener('click', () => {
    app.log = [];
    renderLog();
  });
  for (const b of document.querySelectorAll('button[data-copy]')) {
    b.addEventListener('click', () => copy($(b.dataset.copy), b));
  }
  el.lang.addEventListener('change', () => {
    try {
      localStorage.setItem('wschan.lang', el.lang.value);
    } catch {
      // storage off: the choice lasts until the page is reloaded
    }
    setLang(el.lang.value);
  });
  // Back online: retry at once instead of waiting out the backoff.
  addEventListener('online', () => {
    if (app.timer) {
      clearTimeout(app.timer);
      app.timer = null;
      open(app.url, app.attempt);
    }
  });

  let lang = new URLSearchParams(location.search).get('lang');
  if (!messages[lang]) {
    try {
      lang = localStorage.getItem('wschan.lang');
    } catch {
      lang = null;
    }
  }
  if (!messages[lang]) lang = pickLanguage(navigator.languages?.length ? navigator.languages : [navigator.language]);
  el.url.value = app.url;
  setLang(lang);
  open(app.url);
}

if (typeof document !== 'undefined' && document.getElementById('send-form')) main();
