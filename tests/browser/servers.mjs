// servers.mjs - the processes behind the widget tests: a private PostgreSQL (for resume), the
// simulated model provider (trilemma-sim) and trilemmad itself, which a test can stop and start
// again on the same port (a "server restart" as a client sees it).
//
// Paths come from the environment that tests/integration/run_browser.py sets:
//   TRILEMMA_SERVER  trilemmad binary        TRILEMMA_SIM        trilemma-sim binary
//   TRILEMMA_SOURCE  the source tree         TRILEMMA_ARTIFACTS  where logs and screenshots go
//   TRILEMMA_TEST_DATABASE_URL (optional)    an existing database instead of a private cluster
// Every wait is for an event (a line on stderr, /healthz answering, a process exit) with a bound
// that only turns a hang into a failure.
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync, createWriteStream, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';

export const SOURCE = process.env.TRILEMMA_SOURCE || path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
export const ARTIFACTS = process.env.TRILEMMA_ARTIFACTS || path.join(tmpdir(), 'trilemma-widget-artifacts');
export const IN_CI = /^(1|true|yes)$/i.test(process.env.CI || '');
const BOUND_MS = 30000;

mkdirSync(path.join(ARTIFACTS, 'logs'), { recursive: true });

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function run(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 120000, ...opts }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

// Wait until `pred()` is true; for conditions without an event (a port answering).
async function until(pred, what, bound = BOUND_MS) {
  const deadline = Date.now() + bound;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 25));
  }
}

// ---- PostgreSQL: a private cluster (tests/store/pg_cluster.sh), or TRILEMMA_TEST_DATABASE_URL

export class Postgres {
  async start() {
    if (process.env.TRILEMMA_TEST_DATABASE_URL) {
      this.url = process.env.TRILEMMA_TEST_DATABASE_URL;
      return this;
    }
    this.dir = mkdtempSync(path.join(tmpdir(), 'trilemma-wpg-'));
    const out = await run(path.join(SOURCE, 'tests/store/pg_cluster.sh'), ['start', this.dir], {
      env: { ...process.env, PG_CLUSTER_OPTS: '-c fsync=off -c synchronous_commit=off' },
    });
    this.url = out.trim().split('\n').pop();
    return this;
  }

  async stop() {
    if (this.dir) await run(path.join(SOURCE, 'tests/store/pg_cluster.sh'), ['stop', this.dir]).catch(() => {});
    this.dir = null;
  }
}

// ---- the simulated provider

export class Sim {
  constructor(bin, args = []) {
    this.bin = bin;
    this.args = args;
  }

  start() {
    const log = path.join(ARTIFACTS, 'logs', 'sim.log');
    this.proc = spawn(this.bin, ['--listen', '127.0.0.1:0', ...this.args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const file = createWriteStream(log);
    this.proc.stdout.pipe(file);
    return new Promise((resolve, reject) => {
      let seen = '';
      const timer = setTimeout(() => reject(new Error('trilemma-sim did not start: ' + seen)), BOUND_MS);
      this.proc.on('exit', (code) => reject(new Error('trilemma-sim exited with ' + code + ': ' + seen)));
      this.proc.stderr.on('data', (b) => {
        file.write(b);
        seen += b.toString();
        const m = /listening on http:\/\/127\.0\.0\.1:(\d+)\//.exec(seen);
        if (m && !this.port) {
          this.port = Number(m[1]);
          clearTimeout(timer);
          resolve(this);
        }
      });
    });
  }

  stop() {
    if (!this.proc || this.proc.exitCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      this.proc.once('exit', resolve);
      this.proc.kill('SIGTERM');
    });
  }
}

// ---- trilemmad

const SANITIZER = /ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer)|runtime error:|WARNING: ThreadSanitizer/;

export class Trilemmad {
  // opts: { port, config: {section: {key: value}}, env: {...}, name, workers (default 2) }
  constructor(bin, opts = {}) {
    this.bin = bin;
    this.port = opts.port;
    this.workers = opts.workers || 2;
    this.name = opts.name || 'trilemmad';
    this.config = { server: { web_root: path.join(SOURCE, 'web') }, ...(opts.config || {}) };
    this.config.server = { web_root: path.join(SOURCE, 'web'), ...(opts.config?.server || {}) };
    // every page connects from 127.0.0.1: the per-address turn limits are off (docs/config.md)
    this.config.session = { max_turns_per_ip: 0, turns_per_minute_per_ip: 0, ...(opts.config?.session || {}) };
    this.env = opts.env || {};
    this.dir = mkdtempSync(path.join(tmpdir(), 'trilemma-wsrv-'));
    this.starts = 0;
  }

  get url() { return `http://127.0.0.1:${this.port}`; }

  async start() {
    if (!this.port) this.port = await freePort();
    const ini = Object.entries(this.config)
      .map(([sec, kv]) => `[${sec}]\n` + Object.entries(kv).map(([k, v]) => `${k} = ${v}`).join('\n'))
      .join('\n\n');
    const conf = path.join(this.dir, 'trilemma.ini');
    writeFileSync(conf, ini + '\n');
    // a clean environment: none of the developer's TRILEMMA_* settings, keys or database
    const env = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (k.startsWith('TRILEMMA_') || k.endsWith('_API_KEY') || k.endsWith('_BASE_URL') || k === 'DATABASE_URL') continue;
      env[k] = v;
    }
    Object.assign(env, { TRILEMMA_JOURNAL_DIR: path.join(this.dir, 'journal'), ...this.env });
    this.starts += 1;
    this.logPath = path.join(ARTIFACTS, 'logs', `${this.name}-${this.starts}.log`);
    const log = createWriteStream(this.logPath);
    await new Promise((r) => log.on('open', r));
    this.proc = spawn(this.bin, ['--listen', `127.0.0.1:${this.port}`, '--workers', String(this.workers), '--config', conf], {
      cwd: SOURCE, env, stdio: ['ignore', log, log],
    });
    const proc = this.proc;
    this.exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
    let dead = null;
    this.exited.then((x) => { dead = x; });
    await until(async () => {
      if (dead) throw new Error(`${this.name} exited (${JSON.stringify(dead)}) before /healthz:\n${this.logTail()}`);
      try {
        const r = await fetch(this.url + '/healthz', { signal: AbortSignal.timeout(1000) });
        return r.status === 200;
      } catch { return false; }
    }, `${this.name} /healthz`);
    return this;
  }

  signal(sig) { this.proc.kill(sig); }

  // Stop (SIGTERM by default) and wait for the exit; a SIGTERM must end in status 0 with no
  // sanitizer report.
  async stop(sig = 'SIGTERM', bound = BOUND_MS) {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode) return this.exited && this.exited;
    this.proc.kill(sig);
    return this.waitExit(sig, bound);
  }

  async waitExit(sig = 'SIGTERM', bound = BOUND_MS) {
    let timer;
    const res = await Promise.race([
      this.exited,
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${this.name} did not exit within ${bound} ms\n${this.logTail()}`)), bound); }),
    ]);
    clearTimeout(timer);
    if (sig === 'SIGTERM') {
      const text = this.logText();
      if (res.code !== 0) throw new Error(`${this.name} exited with ${JSON.stringify(res)} after SIGTERM\n${this.logTail()}`);
      if (SANITIZER.test(text)) throw new Error(`${this.name}: sanitizer report\n${this.logTail(80)}`);
    }
    return res;
  }

  logText() { try { return readFileSync(this.logPath, 'utf8'); } catch { return ''; } }
  logTail(n = 40) { return this.logText().split('\n').slice(-n).join('\n'); }
  cleanup() { rmSync(this.dir, { recursive: true, force: true }); }
}

export function haveFile(p) { return !!p && existsSync(p); }
