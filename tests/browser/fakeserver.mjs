// fakeserver.mjs - a scripted chat server for browser tests of client features the real server
// does not produce on demand: node's http module plus a minimal RFC 6455 server side (handshake,
// masked client frames in, unmasked text frames out, ping/pong, close). It serves the files of
// web/ (so /widget.js and the demo page are the real ones), extra routes a test adds, and /ws.
//
// The test drives each turn itself: it awaits the next client message, then sends the events of
// the protocol one by one (conn.send({...})), waiting for the page to show each before the next.
// Nothing here is timed, so an ordering the test asserts is the ordering it produced.
//
//   const fake = await new FakeChatServer({ root: path.join(SOURCE, 'web') }).start();
//   const { conn, msg } = await fake.nextMessage('user_message');
//   conn.send({ type: 'turn_start', turn_id: fake.turnId(), id: msg.id });
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml', '.png': 'image/png',
};

// One upgraded connection: JSON text frames out, decoded client messages in.
class FakeConn {
  constructor(socket, server) {
    this.socket = socket;
    this.server = server;
    this.buf = Buffer.alloc(0);
    this.parts = [];
    this.closed = false;
    socket.on('data', (b) => { this.buf = Buffer.concat([this.buf, b]); this._frames(); });
    socket.on('close', () => { this.closed = true; });
    socket.on('error', () => { this.closed = true; });
  }

  send(obj) { this._frame(0x1, Buffer.from(typeof obj === 'string' ? obj : JSON.stringify(obj))); }

  close(code = 1000) {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(code);
    this._frame(0x8, b);
    this.socket.end();
  }

  _frame(opcode, payload) {
    if (this.closed) return;
    const n = payload.length;
    const head = n < 126 ? Buffer.from([0x80 | opcode, n])
      : n < 65536 ? Buffer.from([0x80 | opcode, 126, n >> 8, n & 255])
        : Buffer.concat([Buffer.from([0x80 | opcode, 127]), (() => { const x = Buffer.alloc(8); x.writeBigUInt64BE(BigInt(n)); return x; })()]);
    this.socket.write(Buffer.concat([head, payload]));
  }

  // Decode every complete frame in the buffer (a browser masks every frame it sends).
  _frames() {
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return;
      const fin = (b[0] & 0x80) !== 0;
      const opcode = b[0] & 0x0f;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) { if (b.length < 4) return; len = b.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (b.length < 10) return; len = Number(b.readBigUInt64BE(2)); off = 10; }
      const masked = (b[1] & 0x80) !== 0;
      const need = off + (masked ? 4 : 0) + len;
      if (b.length < need) return;
      const payload = Buffer.from(b.subarray(off + (masked ? 4 : 0), need));
      if (masked) for (let i = 0; i < len; i++) payload[i] ^= b[off + (i & 3)];
      this.buf = b.subarray(need);
      if (opcode === 0x8) { if (!this.closed) this.close(payload.length >= 2 ? payload.readUInt16BE(0) : 1000); return; }
      if (opcode === 0x9) { this._frame(0xA, payload); continue; }
      if (opcode === 0xA) continue;
      this.parts.push(payload);
      if (!fin) continue;
      const text = Buffer.concat(this.parts).toString('utf8');
      this.parts = [];
      let msg = null;
      try { msg = JSON.parse(text); } catch { /* kept as null: the test sees it */ }
      this.server._received(this, msg);
    }
  }
}

export class FakeChatServer {
  // opts: { root: folder served at /, session: extra members of the `session` event }
  constructor(opts = {}) {
    this.root = opts.root;
    this.sessionExtra = opts.session || {};
    this.routes = new Map();
    this.conns = [];
    this.messages = []; // every client message: {conn, msg}
    this.waiters = [];
    this.requests = []; // every HTTP path requested, in order
  }

  // Serve `body` at `pathname` (e.g. a product image).
  route(pathname, type, body) { this.routes.set(pathname, { type, body }); return this; }

  get url() { return `http://127.0.0.1:${this.port}`; }

  turnId() { return randomBytes(16).toString('hex'); }

  start() {
    this.http = http.createServer((req, res) => this._serve(req, res));
    this.http.on('upgrade', (req, socket) => this._upgrade(req, socket));
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(0, '127.0.0.1', () => { this.port = this.http.address().port; resolve(this); });
    });
  }

  stop() {
    for (const c of this.conns) c.socket.destroy();
    return new Promise((resolve) => this.http.close(() => resolve()));
  }

  // The next client message of `type` not yet taken (in arrival order).
  nextMessage(type, bound = 30000) {
    const k = this.messages.findIndex((m) => m.msg && m.msg.type === type && !m.taken);
    if (k >= 0) { this.messages[k].taken = true; return Promise.resolve(this.messages[k]); }
    return new Promise((resolve, reject) => {
      const w = { type, resolve };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`no ${type} message from the page within ${bound} ms`));
      }, bound);
      this.waiters.push(w);
    });
  }

  _received(conn, msg) {
    const rec = { conn, msg, taken: false };
    this.messages.push(rec);
    const w = this.waiters.find((x) => msg && x.type === msg.type);
    if (!w) return;
    this.waiters.splice(this.waiters.indexOf(w), 1);
    clearTimeout(w.timer);
    rec.taken = true;
    w.resolve(rec);
  }

  _upgrade(req, socket) {
    const key = req.headers['sec-websocket-key'];
    if (new URL(req.url, 'http://x').pathname !== '/ws' || !key || (req.headers.upgrade || '').toLowerCase() !== 'websocket') {
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      return;
    }
    const accept = createHash('sha1').update(key + WS_GUID).digest('base64');
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
                 `Sec-WebSocket-Accept: ${accept}\r\n\r\n`);
    socket.setNoDelay(true);
    const conn = new FakeConn(socket, this);
    this.conns.push(conn);
    conn.send({ type: 'session', conversation_id: randomBytes(16).toString('hex'), user: '', protocol: 1,
                limits: { max_text_bytes: 16000, max_message_bytes: 65536 }, ...this.sessionExtra });
  }

  async _serve(req, res) {
    const pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    this.requests.push(pathname);
    const r = this.routes.get(pathname);
    if (r) {
      res.writeHead(200, { 'content-type': r.type, 'cache-control': 'no-store' });
      res.end(r.body);
      return;
    }
    const rel = pathname === '/' ? 'index.html' : pathname.slice(1);
    const file = path.resolve(this.root || '/nonexistent', rel);
    if (!this.root || !file.startsWith(path.resolve(this.root) + path.sep)) {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream', 'cache-control': 'no-store' });
      res.end(body);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  }
}
