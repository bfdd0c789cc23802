// widget.js - trilemma's embeddable chat widget: one plain ES module, no dependencies.
//
//   <script type="module" src="https://chat.example.com/widget.js"></script>
//   <trilemma-chat launcher chat-title="Shop assistant"></trilemma-chat>
//
// It speaks the chat protocol of docs/protocol.md over one WebSocket, renders answers while they
// stream (a small, safe Markdown subset: model text never becomes HTML), survives reconnects and
// page reloads by resuming the stored conversation, and shows every error as a short sentence.
// Options, events and the security model: docs/widget.md.

const VERSION = '1';
const STORAGE_PREFIX = 'trilemma-chat:v1:';
const MAX_STORED_ITEMS = 60;
const RESUME_RETRY_MS = [400, 1200, 2500];
const RESUME_WATCHDOG_MS = 75000;

// ---------------------------------------------------------------------------------------------
// Markdown subset -> DOM. Everything is built with createElement/createTextNode; no string of
// model text is ever parsed as HTML. Links keep only absolute http(s) URLs.

const RE_FENCE = /^ {0,3}(`{3,}|~{3,})[ \t]*([^\s`]*)[^`]*$/;
const RE_HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const RE_HR = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const RE_BULLET = /^( {0,3})([-*+])(?:([ \t]+)(.*))?$/;
const RE_ORDERED = /^( {0,3})(\d{1,9})([.)])(?:([ \t]+)(.*))?$/;
const RE_QUOTE = /^ {0,3}>[ ]?(.*)$/;
const RE_DELIM = /^ {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/;
const RE_DELIM_PARTIAL = /^ {0,3}\|?[ \t:|-]*$/;
const PUNCT = /[!-/:-@[-`{-~\u2000-\u206f\u2e00-\u2e7f]/;

const isBlank = (l) => /^[ \t]*$/.test(l);
const isWS = (c) => c === undefined || /\s/.test(c);
const isPunct = (c) => c !== undefined && PUNCT.test(c);

function expandTabs(line) {
  // leading tabs count as 4 columns (enough for list nesting); tabs inside text stay
  const m = /^[ \t]+/.exec(line);
  if (!m || !m[0].includes('\t')) return line;
  let col = 0;
  for (const ch of m[0]) col = ch === '\t' ? col + 4 - (col % 4) : col + 1;
  return ' '.repeat(col) + line.slice(m[0].length);
}

const indentOf = (l) => /^ */.exec(l)[0].length;

function listItem(line) {
  let m = RE_BULLET.exec(line);
  if (m) {
    if (RE_HR.test(line)) return null;
    const pad = m[3] ? (m[3].length > 4 ? 1 : m[3].length) : 1;
    return { ordered: false, marker: m[2], start: 1, text: m[4] ?? '', indent: m[1].length + 1 + pad };
  }
  m = RE_ORDERED.exec(line);
  if (m) {
    const pad = m[4] ? (m[4].length > 4 ? 1 : m[4].length) : 1;
    return { ordered: true, marker: m[3], start: parseInt(m[2], 10), text: m[5] ?? '',
             indent: m[1].length + m[2].length + 1 + pad };
  }
  return null;
}

function splitCells(line) {
  let s = line.trim();
  if (s.startsWith('|')) s = s.slice(1);
  if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
  const cells = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && s[i + 1] === '|') { cur += '|'; i++; continue; }
    if (s[i] === '|') { cells.push(cur.trim()); cur = ''; continue; }
    cur += s[i];
  }
  cells.push(cur.trim());
  return cells;
}

function tableStart(lines, i, streaming) {
  const head = lines[i];
  if (!head || !head.includes('|') || i + 1 >= lines.length) return null;
  const delim = lines[i + 1];
  const last = i + 1 === lines.length - 1;
  const full = RE_DELIM.test(delim) && delim.includes('-');
  const partial = streaming && last && RE_DELIM_PARTIAL.test(delim) && delim.includes('-');
  if (!full && !partial) return null;
  const header = splitCells(head);
  if (full) {
    const spec = splitCells(delim);
    if (spec.length === header.length) {
      return { header, align: spec.map((c) => (c.startsWith(':') ? (c.endsWith(':') ? 'center' : 'left') : c.endsWith(':') ? 'right' : '')) };
    }
  }
  return partial ? { header, align: header.map(() => '') } : null;
}

function startsBlock(lines, i, streaming) {
  const l = lines[i];
  if (RE_FENCE.test(l) || RE_HR.test(l) || RE_QUOTE.test(l)) return true;
  const h = RE_HEADING.exec(l);
  if (h && (h[2] !== undefined || /#\s*$/.test(l))) return true;
  const li = listItem(l);
  if (li && li.text.trim() !== '' && (!li.ordered || li.start === 1)) return true;
  return !!tableStart(lines, i, streaming);
}

// Parse lines into blocks: {type, key, ...}. `key` is the block's exact source, so a re-render
// while streaming keeps the DOM of every block that did not change.
function parseBlocks(lines, streaming) {
  const blocks = [];
  let i = 0;
  const n = lines.length;
  while (i < n) {
    const line = lines[i];
    if (isBlank(line)) { i++; continue; }
    const start = i;
    let m;
    if ((m = RE_FENCE.exec(line))) {
      const fence = m[1];
      const body = [];
      i++;
      let closed = false;
      while (i < n) {
        const l = lines[i];
        const c = /^ {0,3}(`{3,}|~{3,})[ \t]*$/.exec(l);
        if (c && c[1][0] === fence[0] && c[1].length >= fence.length) { closed = true; i++; break; }
        body.push(l);
        i++;
      }
      blocks.push({ type: 'code', lang: m[2].replace(/[^\w+#.-]/g, ''), text: body.join('\n'), closed,
                    key: 'code\0' + lines.slice(start, i).join('\n') });
      continue;
    }
    if ((m = RE_HEADING.exec(line)) && (m[2] !== undefined || /#\s*$/.test(line))) {
      blocks.push({ type: 'heading', level: m[1].length, text: m[2] ?? '', key: 'h\0' + line });
      i++;
      continue;
    }
    if (RE_HR.test(line)) {
      blocks.push({ type: 'hr', key: 'hr\0' + line });
      i++;
      continue;
    }
    if (RE_QUOTE.test(line)) {
      const inner = [];
      while (i < n && !isBlank(lines[i])) {
        const q = RE_QUOTE.exec(lines[i]);
        inner.push(q ? q[1] : lines[i]);
        i++;
      }
      blocks.push({ type: 'quote', blocks: parseBlocks(inner, streaming), key: 'q\0' + lines.slice(start, i).join('\n') });
      continue;
    }
    const t = tableStart(lines, i, streaming);
    if (t) {
      const rows = [];
      i += 2;
      while (i < n && !isBlank(lines[i]) && lines[i].includes('|')) {
        const cells = splitCells(lines[i]);
        rows.push(t.header.map((_, k) => cells[k] ?? ''));
        i++;
      }
      blocks.push({ type: 'table', header: t.header, align: t.align, rows, key: 'table\0' + lines.slice(start, i).join('\n') });
      continue;
    }
    const first = listItem(line);
    if (first) {
      const items = [];
      let loose = false;
      while (i < n) {
        const it = listItem(lines[i]);
        if (!it || it.ordered !== first.ordered || it.marker !== first.marker) break;
        const body = [it.text];
        i++;
        while (i < n) {
          const l = lines[i];
          if (isBlank(l)) {
            let j = i + 1;
            while (j < n && isBlank(lines[j])) j++;
            if (j < n && indentOf(lines[j]) >= it.indent) {
              for (let k = i; k < j; k++) body.push('');
              i = j;
              continue;
            }
            break;
          }
          if (indentOf(l) >= it.indent) { body.push(l.slice(it.indent)); i++; continue; }
          if (listItem(l) || startsBlock(lines, i, streaming)) break;
          if (isBlank(body[body.length - 1] ?? '')) break;
          body.push(l.trimStart()); // lazy continuation of the item's paragraph
          i++;
        }
        items.push(parseBlocks(body, streaming));
        if (body.some((b, k) => isBlank(b) && k > 0 && k < body.length - 1)) loose = true;
        let j = i;
        while (j < n && isBlank(lines[j])) j++;
        if (j > i && j < n) {
          const nx = listItem(lines[j]);
          if (nx && nx.ordered === first.ordered && nx.marker === first.marker) { loose = true; i = j; continue; }
        }
        if (j > i) break;
      }
      blocks.push({ type: 'list', ordered: first.ordered, start: first.start, items, loose,
                    key: 'list\0' + lines.slice(start, i).join('\n') });
      continue;
    }
    const para = [line];
    i++;
    while (i < n && !isBlank(lines[i]) && !startsBlock(lines, i, streaming)) para.push(lines[i++]);
    blocks.push({ type: 'p', text: para.map((l) => l.trim()).join('\n'), key: 'p\0' + para.join('\n') });
  }
  return blocks;
}

// Inline: code spans, links, autolinks, emphasis (*, _, **, __), ~~strike~~, line breaks.
function parseInline(s, noLinks) {
  const out = [];
  let buf = '';
  const flush = () => { if (buf) { out.push({ t: 'text', v: buf }); buf = ''; } };
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === '\\' && i + 1 < s.length) {
      if (s[i + 1] === '\n') { flush(); out.push({ t: 'br' }); i += 2; continue; }
      if (isPunct(s[i + 1]) && s.charCodeAt(i + 1) < 128) { buf += s[i + 1]; i += 2; continue; }
    }
    if (c === '`') {
      let k = 1;
      while (s[i + k] === '`') k++;
      const fence = '`'.repeat(k);
      let j = i + k;
      let end = -1;
      while ((j = s.indexOf(fence, j)) >= 0) {
        if (s[j + k] !== '`' && s[j - 1] !== '`') { end = j; break; }
        while (s[j] === '`') j++;
      }
      if (end >= 0) {
        let code = s.slice(i + k, end).replace(/\n/g, ' ');
        if (code.length > 2 && code[0] === ' ' && code[code.length - 1] === ' ' && code.trim()) code = code.slice(1, -1);
        flush();
        out.push({ t: 'code', v: code });
        i = end + k;
        continue;
      }
      buf += fence;
      i += k;
      continue;
    }
    if (!noLinks && (c === '[' || (c === '!' && s[i + 1] === '['))) {
      const link = parseLink(s, c === '!' ? i + 1 : i);
      if (link) {
        flush();
        out.push({ t: 'link', href: link.href, c: parseInline(link.label, true) });
        i = link.end;
        continue;
      }
    }
    if (!noLinks && c === '<') {
      const m = /^<(https?:\/\/[^\s<>]+)>/i.exec(s.slice(i));
      if (m) {
        flush();
        out.push({ t: 'link', href: m[1], c: [{ t: 'text', v: m[1] }] });
        i += m[0].length;
        continue;
      }
    }
    if (!noLinks && (c === 'h' || c === 'H') && (i === 0 || !/[\w/]/.test(s[i - 1]))) {
      const m = /^https?:\/\/[^\s<>]+/i.exec(s.slice(i));
      if (m) {
        let url = m[0];
        // trailing punctuation is the sentence's, not the URL's (keep a balanced ')')
        for (;;) {
          const last = url[url.length - 1];
          if (/[.,:;!?'"*_~\]]/.test(last)) { url = url.slice(0, -1); continue; }
          if (last === ')' && (url.match(/\(/g) || []).length < (url.match(/\)/g) || []).length) { url = url.slice(0, -1); continue; }
          break;
        }
        if (url.length > 8) {
          flush();
          out.push({ t: 'link', href: url, c: [{ t: 'text', v: url }] });
          i += url.length;
          continue;
        }
      }
    }
    if (c === '*' || c === '_' || c === '~') {
      let k = 1;
      while (s[i + k] === c) k++;
      const before = s[i - 1];
      const after = s[i + k];
      const left = !isWS(after) && (!isPunct(after) || isWS(before) || isPunct(before));
      const right = !isWS(before) && (!isPunct(before) || isWS(after) || isPunct(after));
      let canOpen = left;
      let canClose = right;
      if (c === '_') {
        canOpen = left && (!right || isPunct(before));
        canClose = right && (!left || isPunct(after));
      }
      if (c === '~' && k !== 2) { buf += c.repeat(k); i += k; continue; }
      flush();
      out.push({ t: 'delim', ch: c, n: k, canOpen, canClose });
      i += k;
      continue;
    }
    if (c === '\n') {
      buf = buf.replace(/[ \t]+$/, '');
      flush();
      out.push({ t: 'br' });
      i++;
      continue;
    }
    buf += c;
    i++;
  }
  flush();
  return emphasis(out);
}

function parseLink(s, i) {
  // [label](destination "title") starting at s[i] === '['
  let depth = 0;
  let j = i;
  for (; j < s.length; j++) {
    const ch = s[j];
    if (ch === '\\') { j++; continue; }
    if (ch === '`') { const e = s.indexOf('`', j + 1); if (e < 0) return null; j = e; continue; }
    if (ch === '[') depth++;
    else if (ch === ']' && --depth === 0) break;
  }
  if (j >= s.length || s[j + 1] !== '(') return null;
  const label = s.slice(i + 1, j);
  let k = j + 2;
  while (s[k] === ' ' || s[k] === '\t') k++;
  let href = '';
  if (s[k] === '<') {
    const e = s.indexOf('>', k);
    if (e < 0) return null;
    href = s.slice(k + 1, e);
    k = e + 1;
  } else {
    let par = 0;
    const st = k;
    for (; k < s.length; k++) {
      const ch = s[k];
      if (ch === '\\' && k + 1 < s.length) { k++; continue; }
      if (/\s/.test(ch)) break;
      if (ch === '(') par++;
      else if (ch === ')') { if (par === 0) break; par--; }
    }
    href = s.slice(st, k);
  }
  while (s[k] === ' ' || s[k] === '\t') k++;
  if (s[k] === '"' || s[k] === "'") {
    const e = s.indexOf(s[k], k + 1);
    if (e < 0) return null;
    k = e + 1;
    while (s[k] === ' ' || s[k] === '\t') k++;
  }
  if (s[k] !== ')') return null;
  return { label, href, end: k + 1 };
}

function emphasis(items) {
  let ci = 0;
  while (ci < items.length) {
    const closer = items[ci];
    if (closer.t !== 'delim' || !closer.canClose || closer.n === 0) { ci++; continue; }
    let found = -1;
    for (let oi = ci - 1; oi >= 0; oi--) {
      const o = items[oi];
      if (o.t === 'delim' && o.ch === closer.ch && o.canOpen && o.n > 0 &&
          (closer.ch !== '~' || (o.n >= 2 && closer.n >= 2))) { found = oi; break; }
    }
    if (found < 0) { ci++; continue; }
    const opener = items[found];
    const use = closer.ch === '~' ? 2 : opener.n >= 2 && closer.n >= 2 ? 2 : 1;
    const node = { t: closer.ch === '~' ? 'del' : use === 2 ? 'strong' : 'em', c: items.slice(found + 1, ci) };
    opener.n -= use;
    closer.n -= use;
    items.splice(found + 1, ci - found - 1, node);
    ci = found + 2;
  }
  return items;
}

// The only way a URL gets into the DOM: parsed by the browser's own URL parser, absolute,
// http or https. Anything else (javascript:, data:, vbscript:, relative, malformed) is refused.
export function safeHref(raw) {
  if (typeof raw !== 'string') return null;
  try {
    const u = new URL(raw.trim().replace(/\\(.)/g, '$1'));
    if (u.protocol === 'http:' || u.protocol === 'https:') return u.href;
  } catch { /* not an absolute URL */ }
  return null;
}

function renderInline(nodes, parent) {
  for (const nd of nodes) {
    switch (nd.t) {
      case 'text': parent.appendChild(document.createTextNode(nd.v)); break;
      case 'delim': if (nd.n) parent.appendChild(document.createTextNode(nd.ch.repeat(nd.n))); break;
      case 'br': parent.appendChild(document.createElement('br')); break;
      case 'code': {
        const e = document.createElement('code');
        e.textContent = nd.v;
        parent.appendChild(e);
        break;
      }
      case 'em': case 'strong': case 'del': {
        const e = document.createElement(nd.t);
        renderInline(nd.c, e);
        parent.appendChild(e);
        break;
      }
      case 'link': {
        const href = safeHref(nd.href);
        if (!href) { renderInline(nd.c, parent); break; }
        const a = document.createElement('a');
        a.href = href;
        a.rel = 'noopener noreferrer nofollow';
        a.target = '_blank';
        renderInline(nd.c, a);
        if (!a.textContent) a.textContent = href;
        parent.appendChild(a);
        break;
      }
      default: break;
    }
  }
}

function renderBlock(b) {
  let e;
  switch (b.type) {
    case 'p':
      e = document.createElement('p');
      renderInline(parseInline(b.text), e);
      break;
    case 'heading':
      e = document.createElement('p');
      e.className = 'md-h md-h' + Math.min(b.level, 3);
      { const s = document.createElement('strong'); renderInline(parseInline(b.text), s); e.appendChild(s); }
      break;
    case 'hr':
      e = document.createElement('hr');
      break;
    case 'code': {
      e = document.createElement('pre');
      const code = document.createElement('code');
      if (b.lang) code.className = 'language-' + b.lang;
      code.textContent = b.text;
      e.tabIndex = 0;
      e.setAttribute('aria-label', b.lang ? 'Code (' + b.lang + ')' : 'Code');
      e.appendChild(code);
      break;
    }
    case 'quote':
      e = document.createElement('blockquote');
      for (const x of b.blocks) e.appendChild(renderBlock(x));
      break;
    case 'list': {
      e = document.createElement(b.ordered ? 'ol' : 'ul');
      if (b.ordered && b.start !== 1) e.setAttribute('start', String(b.start));
      for (const item of b.items) {
        const li = document.createElement('li');
        item.forEach((x, k) => {
          if (!b.loose && x.type === 'p') {
            if (k > 0) li.appendChild(document.createElement('br'));
            renderInline(parseInline(x.text), li);
          } else li.appendChild(renderBlock(x));
        });
        e.appendChild(li);
      }
      break;
    }
    case 'table': {
      e = document.createElement('div');
      e.className = 'md-table';
      e.tabIndex = 0;
      e.setAttribute('role', 'region');
      e.setAttribute('aria-label', 'Table');
      const table = document.createElement('table');
      const thead = document.createElement('thead');
      const hr = document.createElement('tr');
      b.header.forEach((h, k) => {
        const th = document.createElement('th');
        th.scope = 'col';
        if (b.align[k]) th.style.textAlign = b.align[k];
        renderInline(parseInline(h), th);
        hr.appendChild(th);
      });
      thead.appendChild(hr);
      table.appendChild(thead);
      const tbody = document.createElement('tbody');
      for (const row of b.rows) {
        const tr = document.createElement('tr');
        row.forEach((c, k) => {
          const td = document.createElement('td');
          if (b.align[k]) td.style.textAlign = b.align[k];
          renderInline(parseInline(c), td);
          tr.appendChild(td);
        });
        tbody.appendChild(tr);
      }
      table.appendChild(tbody);
      e.appendChild(table);
      break;
    }
    default:
      e = document.createElement('p');
      break;
  }
  return e;
}

// Render `src` into `container`, keeping the DOM of unchanged blocks (cheap per delta).
export function renderMarkdown(container, src, streaming = false) {
  const blocks = parseBlocks(String(src).replace(/\r\n?/g, '\n').split('\n').map(expandTabs), streaming);
  const old = container.__mdBlocks || [];
  const kept = [];
  blocks.forEach((b, k) => {
    const prev = old[k];
    if (prev && prev.key === b.key && prev.node.parentNode === container) { kept.push(prev); return; }
    const node = renderBlock(b);
    if (prev && prev.node.parentNode === container) container.replaceChild(node, prev.node);
    else container.appendChild(node);
    kept.push({ key: b.key, node });
  });
  for (let k = blocks.length; k < old.length; k++) if (old[k].node.parentNode === container) old[k].node.remove();
  container.__mdBlocks = kept;
  return container;
}

// ---------------------------------------------------------------------------------------------
// Human messages for the protocol's error codes.

const ERROR_TEXT = {
  rate_limited: 'You are sending messages too quickly. Please wait a few seconds and try again.',
  storage_unavailable: 'The chat cannot save messages right now, so new questions are paused. Please try again in a minute.',
  provider_error: 'The answer was cut off by a problem with the AI service. You can ask again.',
  turn_too_large: 'This answer was too long to be saved, so the assistant will not remember it.',
  provider_unavailable: 'The assistant is unavailable right now. Please try again in a moment.',
  text_too_long: 'That message is too long. Please shorten it and send it again.',
  draining: 'The assistant is restarting. Your message was not sent — please send it again in a moment.',
  turn_in_progress: 'Please wait for the current answer to finish (or stop it) before sending another message.',
  unknown_turn: 'That answer had already finished.',
  resume_unavailable: 'This chat server does not keep conversations, so the assistant will not remember earlier messages.',
  unknown_conversation: 'Your earlier conversation could not be found, so a new one has started.',
  forbidden: 'Your earlier conversation belongs to another account, so a new one has started.',
  invalid_json: 'The chat sent something the server did not understand. Please try again.',
  invalid_message: 'The chat sent something the server did not understand. Please try again.',
  unknown_type: 'The chat sent something the server did not understand. Please try again.',
  missing_field: 'The chat sent an incomplete message. Please try again.',
  invalid_field: 'The chat sent an invalid message. Please try again.',
  internal: 'Something went wrong on our side. Please try again.',
  turn_interrupted: 'The server writing this answer stopped before it could finish. Please ask again.',
};

export function errorText(code, limits) {
  if (code === 'text_too_long' && limits && limits.max_text_bytes) {
    return `That message is too long (the limit is about ${limits.max_text_bytes.toLocaleString('en-IN')} characters). Please shorten it and send it again.`;
  }
  return ERROR_TEXT[code] || 'Something went wrong. Please try again.';
}

// ---------------------------------------------------------------------------------------------
// Formatting for the debug footer.

export function formatCost(cost) {
  if (!cost || typeof cost.micros !== 'number') return '';
  const value = cost.micros / 1e6;
  const digits = value === 0 ? 2 : value < 0.01 ? 6 : value < 1 ? 4 : 2;
  try {
    return new Intl.NumberFormat('en-IN', { style: 'currency', currency: cost.currency || 'INR',
      minimumFractionDigits: value === 0 ? 0 : 2, maximumFractionDigits: digits }).format(value);
  } catch {
    return value.toFixed(digits) + ' ' + (cost.currency || '');
  }
}

function formatMs(ms) {
  if (typeof ms !== 'number') return '–';
  return ms < 1000 ? Math.round(ms) + ' ms' : (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
}

// ---------------------------------------------------------------------------------------------
// Work in progress (`status` events) and product slates (`products` events). Both come from the
// server, not from the model, but are treated as untrusted all the same: every string goes into
// the DOM as text, image URLs are parsed and kept only when they are http(s).

const STAGE_TEXT = {
  classifying: 'Understanding your question…',
  searching: 'Searching products…',
  answering: 'Writing the answer…',
  reconnecting: 'Reconnecting…', // the widget's own: the connection dropped mid-answer
};
// what "Checking …" says for the reference deployment's tools; other tools get their own name
const TOOL_TEXT = {
  get_product: 'product details',
  get_offers: 'prices and delivery',
  get_policy: 'store policies',
  get_order: 'your order',
};
const MAX_PRODUCTS = 10;
const MAX_SPECS = 3;

// The status line's words for a `status` event. Unknown stages (a newer server) get a generic
// line; a tool name that is not a plain identifier is not shown at all.
export function statusText(stage, tool) {
  if (stage !== 'calling_tool') return STAGE_TEXT[stage] || 'Working…';
  if (typeof tool !== 'string' || !/^[A-Za-z][\w.-]{0,63}$/.test(tool)) return 'Checking details…';
  if (tool === 'search_products') return STAGE_TEXT.searching;
  const name = TOOL_TEXT[tool] || tool.replace(/^(?:get|fetch|lookup|find)(?:[_.-]|(?=[A-Z]))/, '')
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/[_.-]+/g, ' ').trim().toLowerCase();
  return 'Checking ' + (name || 'details') + '…';
}

// An image URL as the widget will load it: parsed by the browser's URL parser (relative paths
// against `base`, the chat server's http(s) address) and kept only when the result is http: or
// https:. javascript:, data:, blob: and anything malformed give null.
export function safeImageUrl(raw, base) {
  if (typeof raw !== 'string' || !raw.trim() || raw.length > 2048) return null;
  try {
    const u = base ? new URL(raw.trim(), base) : new URL(raw.trim());
    if (u.protocol === 'http:' || u.protocol === 'https:') return u.href;
  } catch { /* not a URL */ }
  return null;
}

const cleanText = (v, max) => (typeof v === 'string' ? [...v.replace(/\s+/g, ' ').trim()].slice(0, max).join('') : '');

// A `products` event's items as the cards show them: at most ten, each with a non-empty id and
// title; every other member is kept only when it has the documented type and range.
export function normalizeProducts(items, base) {
  const out = [];
  if (!Array.isArray(items)) return out;
  for (const x of items) {
    if (out.length >= MAX_PRODUCTS) break;
    if (!x || typeof x !== 'object') continue;
    // the id is opaque (handed back in trilemma-product as sent), so it is checked, not cleaned
    const id = Number.isSafeInteger(x.id) ? String(x.id) : typeof x.id === 'string' && x.id.trim() && x.id.length <= 200 ? x.id : '';
    const title = cleanText(x.title, 300);
    if (!id || !title) continue;
    const p = { id, title };
    const brand = cleanText(x.brand, 120);
    if (brand) p.brand = brand;
    if (typeof x.price === 'number' && Number.isFinite(x.price) && x.price >= 0) p.price = x.price;
    if (typeof x.currency === 'string' && /^[A-Za-z]{3}$/.test(x.currency)) p.currency = x.currency.toUpperCase();
    if (typeof x.rating === 'number' && x.rating >= 0 && x.rating <= 5) p.rating = x.rating;
    const image = safeImageUrl(x.image, base);
    if (image) p.image = image;
    const specs = Array.isArray(x.specs) ? x.specs.map((s) => cleanText(s, 80)).filter(Boolean).slice(0, MAX_SPECS) : [];
    if (specs.length) p.specs = specs;
    out.push(p);
  }
  return out;
}

// Whole units in the currency's own format (en-IN for INR: ₹18,999); paise only when present.
export function formatPrice(price, currency) {
  const digits = Number.isInteger(price) ? 0 : 2;
  const opts = { minimumFractionDigits: digits, maximumFractionDigits: digits };
  const locale = !currency || currency === 'INR' ? 'en-IN' : undefined;
  try {
    if (currency) return new Intl.NumberFormat(locale, { ...opts, style: 'currency', currency }).format(price);
  } catch { /* a currency code this browser does not know */ }
  return new Intl.NumberFormat(locale, opts).format(price) + (currency ? ' ' + currency : '');
}

// ---------------------------------------------------------------------------------------------
// The element.

// Icons as data, built with createElementNS: the widget never parses markup.
const ICON = {
  chat: [['path', { d: 'M4 5.5A2.5 2.5 0 0 1 6.5 3h11A2.5 2.5 0 0 1 20 5.5v8a2.5 2.5 0 0 1-2.5 2.5H10l-4.2 3.6c-.5.4-1.3.1-1.3-.6V16A2.5 2.5 0 0 1 4 13.5v-8Z', fill: 'currentColor' }]],
  close: [['path', { d: 'M6 6l12 12M18 6 6 18', stroke: 'currentColor', 'stroke-width': '2.2', 'stroke-linecap': 'round', fill: 'none' }]],
  send: [['path', { d: 'M4.4 11.2 18.7 4.6c.9-.4 1.8.5 1.4 1.4l-6.6 14.3c-.4.9-1.7.8-1.9-.2l-1.3-5.3a1 1 0 0 0-.7-.7l-5.3-1.3c-1-.2-1.1-1.5-.2-1.9Z', fill: 'currentColor' }]],
  stop: [['rect', { x: '6', y: '6', width: '12', height: '12', rx: '2', fill: 'currentColor' }]],
  reset: [['path', { d: 'M4 12a8 8 0 1 0 2.6-5.9M4 4v4.5h4.5', stroke: 'currentColor', 'stroke-width': '2', 'stroke-linecap': 'round', 'stroke-linejoin': 'round', fill: 'none' }]],
  image: [['rect', { x: '3.5', y: '5', width: '17', height: '14', rx: '2.5', stroke: 'currentColor', 'stroke-width': '1.6', fill: 'none' }],
          ['circle', { cx: '9', cy: '10', r: '1.7', fill: 'currentColor' }],
          ['path', { d: 'm4.5 17.5 5-5 3.5 3.5 2.5-2.5 4 4', stroke: 'currentColor', 'stroke-width': '1.6', 'stroke-linejoin': 'round', fill: 'none' }]],
};

function icon(name) {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  for (const [tag, attrs] of ICON[name]) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    svg.appendChild(e);
  }
  return svg;
}

function imagePlaceholder() {
  const ph = document.createElement('div');
  ph.className = 'product-ph';
  ph.appendChild(icon('image'));
  return ph;
}

// One product card (a normalized product, see normalizeProducts). The title is a button whose
// ::after covers the card, so the whole card is one click target and one Tab stop, and Enter or
// Space on it is a click; `onPick(p)` runs for each.
function productCard(p, onPick) {
  const li = document.createElement('li');
  li.className = 'product';
  li.dataset.productId = p.id;
  const media = document.createElement('div');
  media.className = 'product-media';
  if (p.image) {
    const img = document.createElement('img');
    // a broken image becomes the placeholder (listener first: the error can come at once)
    img.addEventListener('error', () => img.replaceWith(imagePlaceholder()), { once: true });
    img.setAttribute('alt', p.title);
    img.setAttribute('loading', 'lazy');
    img.setAttribute('decoding', 'async');
    img.setAttribute('referrerpolicy', 'no-referrer');
    img.setAttribute('src', p.image);
    media.appendChild(img);
  } else media.appendChild(imagePlaceholder());
  const info = document.createElement('div');
  info.className = 'product-info';
  const title = document.createElement('p');
  title.className = 'product-title';
  const btn = document.createElement('button');
  btn.type = 'button';
  btn.className = 'product-btn';
  const name = document.createElement('span');
  name.className = 'product-name'; // clamped to two lines; the button's name is the whole title
  name.textContent = p.title;
  btn.appendChild(name);
  btn.addEventListener('click', () => onPick(p));
  title.appendChild(btn);
  info.appendChild(title);
  if (p.brand) {
    const brand = document.createElement('p');
    brand.className = 'product-brand';
    brand.textContent = p.brand;
    info.appendChild(brand);
  }
  if (p.price !== undefined || p.rating !== undefined) {
    const row = document.createElement('p');
    row.className = 'product-row';
    if (p.price !== undefined) {
      const price = document.createElement('span');
      price.className = 'product-price';
      price.textContent = formatPrice(p.price, p.currency);
      row.appendChild(price);
    }
    if (p.rating !== undefined) {
      const r = p.rating.toFixed(1);
      const rating = document.createElement('span');
      rating.className = 'product-rating';
      rating.setAttribute('role', 'img');
      rating.setAttribute('aria-label', `Rated ${r} out of 5`);
      rating.textContent = r + ' ★';
      row.appendChild(rating);
    }
    info.appendChild(row);
  }
  if (p.specs) {
    const specs = document.createElement('ul');
    specs.className = 'product-specs';
    specs.setAttribute('aria-label', 'Key specs');
    for (const s of p.specs) {
      const item = document.createElement('li');
      item.textContent = s;
      specs.appendChild(item);
    }
    info.appendChild(specs);
  }
  li.append(media, info);
  return li;
}

const STYLE = `
:host{--tc-accent:var(--trilemma-accent,#0b6e5f);--tc-accent-text:var(--trilemma-accent-text,#fff);
--tc-bg:var(--trilemma-background,#fff);--tc-surface:var(--trilemma-surface,#f2f4f3);--tc-text:var(--trilemma-text,#1c2321);
--tc-muted:var(--trilemma-muted,#4f5b57);--tc-border:var(--trilemma-border,#d5dbd9);--tc-focus:var(--trilemma-focus,#1a56db);
--tc-error-bg:#fdecea;--tc-error-text:#8c1d18;--tc-radius:var(--trilemma-radius,14px);
--tc-font:var(--trilemma-font,system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Helvetica Neue",Arial,sans-serif);
display:block;font:15px/1.5 var(--tc-font);color:var(--tc-text);text-align:left}
:host([hidden]){display:none}
*,*::before,*::after{box-sizing:border-box}
[hidden]{display:none !important}
button{font:inherit;color:inherit;cursor:pointer}
button:focus-visible,textarea:focus-visible,a:focus-visible,[tabindex]:focus-visible{outline:3px solid var(--tc-focus);outline-offset:2px}
svg{width:20px;height:20px;display:block}
.sr-only{position:absolute;width:1px;height:1px;padding:0;margin:-1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}
.launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;display:flex;align-items:center;gap:.5rem;
padding:.8rem 1.15rem .8rem 1rem;border:0;border-radius:999px;background:var(--tc-accent);color:var(--tc-accent-text);
font-weight:600;box-shadow:0 8px 24px rgba(0,0,0,.22),0 2px 6px rgba(0,0,0,.12);transition:transform .15s ease}
.launcher:hover{transform:translateY(-2px)}
.launcher svg{width:22px;height:22px}
:host(:not([launcher])) .launcher{display:none}
.panel{display:flex;flex-direction:column;background:var(--tc-bg);color:var(--tc-text);border:1px solid var(--tc-border);
border-radius:var(--tc-radius);overflow:hidden;height:var(--trilemma-height,560px);min-height:320px}
:host([launcher]) .panel{position:fixed;right:20px;bottom:88px;z-index:2147483001;width:min(400px,calc(100vw - 40px));
height:min(640px,calc(100vh - 112px));box-shadow:0 18px 48px rgba(0,0,0,.25),0 4px 12px rgba(0,0,0,.12)}
.panel[hidden]{display:none}
.head{display:flex;align-items:center;gap:.5rem;padding:.75rem .75rem .75rem 1rem;background:var(--tc-accent);color:var(--tc-accent-text)}
.titles{flex:1;min-width:0}
.title{margin:0;font-size:1rem;line-height:1.3;font-weight:650;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.status{margin:.1rem 0 0;font-size:.8rem;display:flex;align-items:center;gap:.4rem;min-height:1.2rem}
.dot{width:.55rem;height:.55rem;border-radius:50%;background:#9aa5a1;box-shadow:0 0 0 2px rgba(255,255,255,.55)}
.status[data-status=connected] .dot{background:#3ddc84}
.status[data-status=reconnecting] .dot,.status[data-status=connecting] .dot{background:#ffc24b}
.status[data-status=offline] .dot{background:#ff6b6b}
.retry{border:1px solid currentColor;background:transparent;border-radius:999px;padding:0 .55rem;font-size:.75rem;line-height:1.4rem}
.icon{flex:none;display:grid;place-items:center;width:2.25rem;height:2.25rem;border:0;border-radius:10px;background:transparent;color:inherit}
.icon:hover{background:rgba(255,255,255,.16)}
.head .icon:focus-visible,.head .retry:focus-visible{outline-color:var(--tc-accent-text)}
:host(:not([launcher])) .close{display:none}
.thread{flex:1;overflow-y:auto;padding:1rem;display:flex;flex-direction:column;gap:.75rem;overscroll-behavior:contain}
.thread:focus{outline:none}
.thread:focus-visible{outline:3px solid var(--tc-focus);outline-offset:-3px}
.msg{display:flex;flex-direction:column;max-width:88%;min-width:0}
.msg.user{align-self:flex-end;align-items:flex-end}
.msg.assistant{align-self:flex-start}
.bubble{padding:.6rem .85rem;border-radius:var(--tc-radius);overflow-wrap:anywhere;min-width:0;max-width:100%}
.user .bubble{background:var(--tc-accent);color:var(--tc-accent-text);border-bottom-right-radius:4px;white-space:pre-wrap}
.assistant .bubble{background:var(--tc-surface);border-bottom-left-radius:4px}
.assistant.widen{max-width:100%;width:100%}
.user.failed .bubble{opacity:.75}
.msg-note{font-size:.78rem;color:var(--tc-muted);margin:.25rem .35rem 0}
.msg-meta{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:var(--tc-muted);margin:.3rem .35rem 0}
.notice{align-self:center;max-width:92%;font-size:.85rem;padding:.45rem .8rem;border-radius:10px;background:var(--tc-surface);color:var(--tc-muted);text-align:center}
.notice.error{background:var(--tc-error-bg);color:var(--tc-error-text)}
.md>:first-child{margin-top:0}.md>:last-child{margin-bottom:0}
.md p,.md ul,.md ol,.md pre,.md blockquote,.md .md-table{margin:.5rem 0}
.md ul,.md ol{padding-left:1.3rem}
.md li+li{margin-top:.15rem}
.md a{color:var(--tc-link,#0a5a9c);text-decoration:underline;text-underline-offset:2px}
.md code{font:.88em/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:rgba(0,0,0,.07);padding:.08em .3em;border-radius:5px}
.md pre{background:#1e2421;color:#eef2f0;padding:.65rem .8rem;border-radius:10px;overflow-x:auto;white-space:pre}
.md pre code{background:none;padding:0;color:inherit;font-size:.85em}
.md blockquote{border-left:3px solid var(--tc-border);padding-left:.7rem;color:var(--tc-muted)}
.md hr{border:0;border-top:1px solid var(--tc-border)}
.md .md-h{font-size:1.02rem}
.md-table{overflow-x:auto;max-width:100%;border-radius:8px;border:1px solid var(--tc-border);background:var(--tc-bg)}
.md table{border-collapse:collapse;width:100%;font-size:.9rem}
.md th,.md td{padding:.4rem .6rem;border-bottom:1px solid var(--tc-border);text-align:left;vertical-align:top;overflow-wrap:normal;word-break:normal;min-width:4.5em}
.md td:first-child{font-weight:550}
.md th{background:rgba(0,0,0,.04);font-weight:650}
.md tr:last-child td{border-bottom:0}
.typing{display:inline-flex;gap:.3rem;padding:.35rem .1rem;align-items:center}
.typing span{width:.45rem;height:.45rem;border-radius:50%;background:var(--tc-muted);opacity:.35;animation:tc-blink 1.2s infinite}
.typing span:nth-child(2){animation-delay:.2s}.typing span:nth-child(3){animation-delay:.4s}
@keyframes tc-blink{0%,80%,100%{opacity:.3;transform:translateY(0)}40%{opacity:1;transform:translateY(-2px)}}
.work-line{display:flex;align-items:center;gap:.55rem;padding:.3rem .15rem;font-size:.85rem;color:var(--tc-muted)}
.work-dots{display:inline-flex;gap:.22rem}
.work-dots span{width:.38rem;height:.38rem;border-radius:50%;background:var(--tc-accent);opacity:.35;animation:tc-blink 1.2s infinite}
.work-dots span:nth-child(2){animation-delay:.2s}.work-dots span:nth-child(3){animation-delay:.4s}
.products{list-style:none;display:flex;gap:.6rem;margin:0 0 .45rem;padding:6px 6px 10px;overflow-x:auto;
scroll-snap-type:x proximity;scroll-padding:6px;scrollbar-width:thin;overscroll-behavior-x:contain}
.product{position:relative;flex:0 0 9.5rem;min-width:0;display:flex;flex-direction:column;background:var(--tc-bg);
border:1px solid var(--tc-border);border-radius:12px;scroll-snap-align:start;transition:box-shadow .15s ease,border-color .15s ease}
.product:hover{border-color:#a9b3af;box-shadow:0 4px 14px rgba(0,0,0,.1)}
.product-media{aspect-ratio:4/3;display:grid;place-items:center;background:#fff;border-radius:11px 11px 0 0;overflow:hidden;border-bottom:1px solid var(--tc-border)}
.product-media img{width:100%;height:100%;object-fit:contain;padding:.45rem}
.product-ph{width:100%;height:100%;display:grid;place-items:center;background:var(--tc-surface);color:var(--tc-muted)}
.product-ph svg{width:34px;height:34px;opacity:.75}
.product-info{display:flex;flex-direction:column;gap:.2rem;padding:.5rem .65rem .65rem;font-size:.82rem;line-height:1.35;overflow-wrap:anywhere}
.product-info p{margin:0}
.product-btn{display:block;width:100%;padding:0;border:0;background:none;font-weight:650;font-size:.86rem;line-height:1.3;text-align:left;color:var(--tc-text)}
.product-name{display:-webkit-box;-webkit-box-orient:vertical;-webkit-line-clamp:2;overflow:hidden}
.product-btn::after{content:"";position:absolute;inset:0;border-radius:12px}
.product-btn:focus-visible{outline:none}
.product-btn:focus-visible::after{outline:3px solid var(--tc-focus);outline-offset:2px}
.product:hover .product-btn{text-decoration:underline;text-underline-offset:2px}
.product-brand{color:var(--tc-muted);font-size:.78rem}
.product-row{display:flex;flex-wrap:wrap;align-items:center;gap:.25rem .45rem}
.product-price{font-weight:700;font-size:.98rem;color:var(--tc-text)}
.product-rating{display:inline-block;padding:0 .35rem;border-radius:5px;background:#1d6b35;color:#fff;font-size:.74rem;font-weight:650;line-height:1.5}
.product-specs{list-style:none;margin:.15rem 0 0;padding:0;color:var(--tc-muted);font-size:.76rem}
.product-specs li{position:relative;padding-left:.7rem}
.product-specs li::before{content:"";position:absolute;left:.1rem;top:.55em;width:.25rem;height:.25rem;border-radius:50%;background:currentColor}
@media (prefers-reduced-motion:reduce){.typing span,.work-dots span{animation:none;opacity:.7}.launcher,.product{transition:none}}
.suggestions{display:flex;flex-wrap:wrap;gap:.45rem;margin-top:.15rem}
.chip{border:1px solid var(--tc-accent);background:var(--tc-bg);color:var(--tc-accent);border-radius:999px;padding:.3rem .75rem;font-size:.85rem;text-align:left}
.chip:hover{background:var(--tc-surface)}
.composer{display:flex;align-items:flex-end;gap:.5rem;padding:.65rem .75rem;border-top:1px solid var(--tc-border);background:var(--tc-bg)}
.composer textarea{flex:1;resize:none;min-height:2.6rem;max-height:9rem;padding:.55rem .75rem;border:1px solid #8a9591;border-radius:12px;
font:inherit;color:var(--tc-text);background:var(--tc-bg);line-height:1.4}
.composer textarea::placeholder{color:#5f6a66}
.composer textarea:disabled{background:var(--tc-surface);color:var(--tc-muted)}
.send,.stop{flex:none;height:2.6rem;min-width:2.6rem;display:inline-flex;align-items:center;justify-content:center;gap:.35rem;border:0;border-radius:12px;
background:var(--tc-accent);color:var(--tc-accent-text);font-weight:600;padding:0 .7rem}
.stop{background:#fff;color:var(--tc-text);border:1px solid #8a9591}
.send:disabled{opacity:.55;cursor:not-allowed}
.send[hidden],.stop[hidden],.retry[hidden]{display:none}
.foot{display:flex;justify-content:space-between;gap:.5rem;padding:0 .9rem .5rem;font-size:.72rem;color:var(--tc-muted);background:var(--tc-bg);white-space:nowrap;overflow:hidden}
.foot .brand{overflow:hidden;text-overflow:ellipsis}
.debug{font:11.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:var(--tc-muted);padding:.35rem .9rem;border-top:1px dashed var(--tc-border);background:var(--tc-bg);overflow-wrap:anywhere}
@media (max-width:480px){
:host([launcher]) .panel{right:0;bottom:0;left:0;top:0;width:100%;height:100%;max-height:none;border-radius:0;border:0}
:host([launcher][data-open]) .launcher{display:none}
.msg{max-width:92%}
.foot .brand{display:none}
.launcher{right:14px;bottom:14px}
}
`;

const OBSERVED = ['server', 'chat-title', 'title', 'placeholder', 'greeting', 'suggestions', 'debug', 'launcher', 'launcher-label', 'accent', 'accent-text'];

function uid() {
  const a = new Uint8Array(6);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

function defaultServer() {
  try {
    const base = new URL(import.meta.url);
    return (base.protocol === 'https:' ? 'wss://' : 'ws://') + base.host + '/ws';
  } catch {
    return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  }
}

function normalizeServer(s) {
  if (!s) return defaultServer();
  try {
    const u = new URL(s, location.href);
    if (u.protocol === 'http:') u.protocol = 'ws:';
    else if (u.protocol === 'https:') u.protocol = 'wss:';
    if (u.pathname === '/' || u.pathname === '') u.pathname = '/ws';
    return u.href;
  } catch {
    return defaultServer();
  }
}

export class TrilemmaChat extends HTMLElement {
  static get observedAttributes() { return OBSERVED; }

  constructor() {
    super();
    this._opts = { tokenProvider: null, theme: null, suggestions: null };
    this._ws = null;
    this._status = 'idle';
    this._attempts = 0;
    this._reconnectTimer = 0;
    this._limits = { max_text_bytes: 16000 };
    this._cid = null; // the conversation this widget continues
    this._items = []; // transcript: {kind:'user'|'assistant'|'notice', ...}
    this._byTurn = new Map();
    this._phase = 'idle'; // idle | waiting (sent, no turn_start) | streaming | resuming
    this._pending = null; // {userId, rec} the turn in flight when the connection dropped
    this._current = null; // {userId, rec, stopRequested}
    this._discardTurn = null; // replayed turn whose events are ignored until the next `resumed`
    this._resumeTries = 0;
    this._resumeTimer = 0;
    this._resumeSent = false;
    this._saveTimer = 0;
    this._msgCounter = 0;
    this._total = { micros: 0, currency: 'INR', turns: 0 };
    this._built = false;
  }

  // -- options (attributes, or properties for what attributes cannot carry)
  get server() { return normalizeServer(this._opts.server || this.getAttribute('server')); }
  set server(v) { this._opts.server = v; }
  get tokenProvider() { return this._opts.tokenProvider; }
  set tokenProvider(fn) { this._opts.tokenProvider = typeof fn === 'function' ? fn : null; }
  get theme() { return this._opts.theme; }
  set theme(t) { this._opts.theme = t || null; this._applyTheme(); }
  get suggestions() { return this._opts.suggestions || this._attrList('suggestions'); }
  set suggestions(v) { this._opts.suggestions = Array.isArray(v) ? v.map(String) : null; this._renderSuggestions(); }
  get debug() { return this._opts.debug ?? this.hasAttribute('debug'); }
  set debug(v) { this._opts.debug = !!v; this._syncDebug(); }
  get conversationId() { return this._cid; }
  get status() { return this._status; }
  get busy() { return this._phase !== 'idle'; }
  // `chat-title` (preferred: a `title` attribute also makes the browser show a tooltip over the
  // whole widget), or `title`
  get chatTitle() { return this._opts.title || this.getAttribute('chat-title') || this.getAttribute('title') || 'Chat with us'; }
  get placeholder() { return this._opts.placeholder || this.getAttribute('placeholder') || 'Type your message…'; }
  set placeholder(v) { this._opts.placeholder = v; if (this._built) this._el.input.placeholder = this.placeholder; }
  get greeting() { return this._opts.greeting ?? this.getAttribute('greeting') ?? ''; }

  _attrList(name) {
    const v = this.getAttribute(name);
    return v ? v.split('|').map((s) => s.trim()).filter(Boolean) : [];
  }

  configure(opts = {}) {
    for (const [k, v] of Object.entries(opts)) {
      if (k === 'tokenProvider') this.tokenProvider = v;
      else if (k === 'theme') this.theme = v;
      else if (k === 'suggestions') this.suggestions = v;
      else if (k === 'debug') this.debug = v;
      else if (k === 'launcher') this.toggleAttribute('launcher', !!v);
      else this._opts[k] = v;
    }
    if (this._built) {
      this._syncText();
      if ('greeting' in opts) this._renderAll();
    }
    return this;
  }

  connectedCallback() {
    for (const p of ['server', 'tokenProvider', 'theme', 'suggestions', 'debug', 'placeholder']) {
      if (Object.prototype.hasOwnProperty.call(this, p)) {
        const v = this[p];
        delete this[p];
        this[p] = v;
      }
    }
    if (!this._built) this._build();
    if (this._restored) return;
    this._restored = true;
    this._onPageHide = () => this._save();
    this._onOnline = () => { if (!this._ws && this._wantConnection) this._reconnectNow(); };
    this._onOffline = () => { if (!this._ws) this._setStatus('offline'); };
    window.addEventListener('pagehide', this._onPageHide);
    window.addEventListener('online', this._onOnline);
    window.addEventListener('offline', this._onOffline);
    this._restore();
    // connect at once when there is a conversation to continue or the chat is visible; a closed
    // launcher connects when opened. A macrotask later, so that properties set right after the
    // element is created (tokenProvider) are in place.
    setTimeout(() => {
      if (!this.isConnected) return;
      const stored = this._load();
      if (!this.hasAttribute('launcher') || this.hasAttribute('open') || (stored && stored.open)) this.open({ focus: false });
      else if (this._cid) this._ensureConnection();
    }, 0);
  }

  disconnectedCallback() {
    clearTimeout(this._resumeWatchdog);
    window.removeEventListener('pagehide', this._onPageHide);
    window.removeEventListener('online', this._onOnline);
    window.removeEventListener('offline', this._onOffline);
    this._save();
    this._wantConnection = false;
    clearTimeout(this._reconnectTimer);
    clearTimeout(this._resumeTimer);
    if (this._ws) { const ws = this._ws; this._ws = null; ws.close(1000, 'widget removed'); }
  }

  attributeChangedCallback(name) {
    if (!this._built) return;
    if (name === 'debug') this._syncDebug();
    else if (name === 'accent' || name === 'accent-text') this._applyTheme();
    else if (name === 'server') { if (this._wantConnection) this._reconnectNow(); }
    else if (name === 'suggestions' || name === 'greeting') this._renderAll();
    else this._syncText();
  }

  // -- public methods
  open({ focus = true } = {}) {
    if (!this._built) this._build();
    this._el.panel.hidden = false;
    this.setAttribute('data-open', '');
    this._el.launcher.setAttribute('aria-expanded', 'true');
    this._ensureConnection();
    this._saveSoon();
    this._scrollToEnd(true);
    if (focus) (this._el.input.disabled ? this._el.thread : this._el.input).focus();
    this._emit('open', {});
  }

  close() {
    if (!this._built || !this.hasAttribute('launcher')) return;
    this._el.panel.hidden = true;
    this.removeAttribute('data-open');
    this._el.launcher.setAttribute('aria-expanded', 'false');
    this._saveSoon();
    this._el.launcher.focus();
    this._emit('close', {});
  }

  toggle() { if (this._el.panel.hidden) this.open(); else this.close(); }

  // Put text in the composer (and send it when `send` is true and nothing is running).
  ask(text, { send = false } = {}) {
    this.open();
    this._el.input.value = String(text);
    this._autosize();
    this._syncSend();
    if (send) this.send();
  }

  send(text) {
    const input = this._el.input;
    const value = text !== undefined ? String(text) : input.value;
    if (!value.trim() || this._phase !== 'idle') return false;
    if (!this._ws || this._status !== 'connected') {
      this._notice('You are offline right now. Your message will be ready to send when the chat reconnects.', 'error');
      return false;
    }
    const bytes = new TextEncoder().encode(value).length;
    if (bytes > this._limits.max_text_bytes) {
      this._notice(errorText('text_too_long', this._limits), 'error');
      return false;
    }
    const id = 'm-' + uid() + '-' + ++this._msgCounter;
    const rec = { kind: 'user', id, text: value };
    this._push(rec);
    if (text === undefined) { input.value = ''; this._autosize(); }
    this._current = { userId: id, rec: null, stopRequested: false };
    this._setPhase('waiting');
    this._showTyping(true);
    this._wsSend({ type: 'user_message', id, text: value });
    this._save();
    return true;
  }

  stop() {
    const cur = this._current;
    if (!cur) return;
    cur.stopRequested = true;
    if (cur.rec && this._ws) this._wsSend({ type: 'cancel', turn_id: cur.rec.turnId });
    this._el.stop.disabled = true;
  }

  // Forget the conversation and start a new one.
  reset() {
    clearTimeout(this._resumeTimer);
    this._items = [];
    this._byTurn.clear();
    this._cid = null;
    this._current = null;
    this._pending = null;
    this._discardTurn = null;
    this._total = { micros: 0, currency: 'INR', turns: 0 };
    this._setPhase('idle');
    this._renderAll();
    this._save();
    if (this._ws) { const ws = this._ws; this._ws = null; ws.close(1000, 'new conversation'); }
    this._attempts = 0;
    this._connect();
  }

  // -- DOM
  _build() {
    this._built = true;
    const root = this.attachShadow({ mode: 'open' });
    // a constructed stylesheet works under a strict Content-Security-Policy (no inline <style>)
    try {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(STYLE);
      root.adoptedStyleSheets = [sheet];
    } catch {
      const style = document.createElement('style');
      style.textContent = STYLE;
      root.appendChild(style);
    }
    const $ = (tag, cls, attrs = {}) => {
      const e = document.createElement(tag);
      if (cls) e.className = cls;
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
      return e;
    };
    const el = {};
    el.launcher = $('button', 'launcher', { type: 'button', 'aria-expanded': 'false', 'aria-controls': 'tc-panel', part: 'launcher' });
    el.launcher.appendChild(icon('chat'));
    el.launcherLabel = $('span', 'launcher-label');
    el.launcher.appendChild(el.launcherLabel);
    el.panel = $('section', 'panel', { id: 'tc-panel', 'aria-labelledby': 'tc-title', part: 'panel' });
    if (this.hasAttribute('launcher')) el.panel.hidden = true;
    const head = $('header', 'head', { part: 'header' });
    const titles = $('div', 'titles');
    el.title = $('h2', 'title', { id: 'tc-title' });
    el.statusRow = $('p', 'status', { role: 'status', 'data-status': 'idle' });
    el.statusRow.appendChild($('span', 'dot', { 'aria-hidden': 'true' }));
    el.statusText = $('span', 'status-text');
    el.statusRow.appendChild(el.statusText);
    el.retry = $('button', 'retry', { type: 'button' });
    el.retry.textContent = 'Retry now';
    el.retry.hidden = true;
    el.statusRow.appendChild(el.retry);
    titles.append(el.title, el.statusRow);
    el.reset = $('button', 'icon reset', { type: 'button', 'aria-label': 'Start a new conversation', title: 'New conversation' });
    el.reset.appendChild(icon('reset'));
    el.close = $('button', 'icon close', { type: 'button', 'aria-label': 'Close chat', title: 'Close' });
    el.close.appendChild(icon('close'));
    head.append(titles, el.reset, el.close);
    el.thread = $('div', 'thread', { role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions text', 'aria-label': 'Conversation', tabindex: '-1', part: 'thread' });
    el.form = $('form', 'composer', { part: 'composer' });
    const label = $('label', 'sr-only', { for: 'tc-input' });
    label.textContent = 'Message';
    el.input = $('textarea', '', { id: 'tc-input', rows: '1', enterkeyhint: 'send', 'aria-describedby': 'tc-hint', autocomplete: 'off' });
    el.send = $('button', 'send', { type: 'submit', 'aria-label': 'Send message', title: 'Send (Enter)' });
    el.send.appendChild(icon('send'));
    el.stop = $('button', 'stop', { type: 'button', title: 'Stop the answer' });
    el.stop.appendChild(icon('stop'));
    el.stop.appendChild(document.createTextNode('Stop'));
    el.stop.hidden = true;
    el.form.append(label, el.input, el.stop, el.send);
    el.foot = $('div', 'foot');
    el.hint = $('span', '', { id: 'tc-hint' });
    el.hint.textContent = 'Enter sends · Shift+Enter adds a line';
    el.brand = $('span', 'brand');
    el.brand.textContent = 'AI can make mistakes';
    el.foot.append(el.hint, el.brand);
    el.debug = $('div', 'debug', { part: 'debug', 'aria-label': 'Debug information' });
    el.panel.append(head, el.thread, el.form, el.foot, el.debug);
    root.append(el.launcher, el.panel);
    this._el = el;

    el.launcher.addEventListener('click', () => this.toggle());
    el.close.addEventListener('click', () => this.close());
    el.reset.addEventListener('click', () => this.reset());
    el.retry.addEventListener('click', () => this._reconnectNow());
    el.stop.addEventListener('click', () => this.stop());
    el.form.addEventListener('submit', (e) => { e.preventDefault(); this.send(); });
    el.input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey && !e.metaKey) {
        e.preventDefault();
        this.send();
      }
    });
    el.input.addEventListener('input', () => { this._autosize(); this._syncSend(); });
    el.thread.addEventListener('scroll', () => {
      this._stick = el.thread.scrollHeight - el.thread.scrollTop - el.thread.clientHeight < 48;
    }, { passive: true });
    el.panel.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && this.hasAttribute('launcher')) { e.stopPropagation(); this.close(); }
    });
    this._applyTheme();
    this._syncText();
    this._syncDebug();
    this._setStatus('idle');
    this._renderAll();
    this._syncSend();
  }

  _syncText() {
    const el = this._el;
    el.title.textContent = this.chatTitle;
    el.input.placeholder = this.placeholder;
    const label = this.getAttribute('launcher-label') || this._opts.launcherLabel || 'Chat';
    el.launcherLabel.textContent = label;
    el.launcher.setAttribute('aria-label', 'Open chat: ' + this.chatTitle);
  }

  _syncDebug() {
    if (!this._built) return;
    this._el.debug.hidden = !this.debug;
    for (const it of this._items) if (it.kind === 'assistant') this._renderMeta(it);
    this._renderDebugFooter();
  }

  _applyTheme() {
    if (!this._built) return;
    const t = { ...(this._opts.theme || {}) };
    if (this.getAttribute('accent')) t.accent = this.getAttribute('accent');
    if (this.getAttribute('accent-text')) t.accentText = this.getAttribute('accent-text');
    const map = { accent: '--trilemma-accent', accentText: '--trilemma-accent-text', background: '--trilemma-background',
      surface: '--trilemma-surface', text: '--trilemma-text', muted: '--trilemma-muted', border: '--trilemma-border',
      focus: '--trilemma-focus', link: '--tc-link', radius: '--trilemma-radius', font: '--trilemma-font', height: '--trilemma-height' };
    for (const [k, prop] of Object.entries(map)) {
      if (t[k] !== undefined && t[k] !== null && /^[^;{}<>]*$/.test(String(t[k]))) this.style.setProperty(prop, String(t[k]));
    }
  }

  _autosize() {
    const i = this._el.input;
    i.style.height = 'auto';
    i.style.height = Math.min(i.scrollHeight + 2, 144) + 'px';
  }

  _syncSend() {
    const el = this._el;
    const running = this._phase !== 'idle';
    el.input.disabled = running;
    el.stop.hidden = !(this._phase === 'waiting' || this._phase === 'streaming');
    el.send.hidden = !el.stop.hidden;
    el.send.disabled = running || !el.input.value.trim() || this._status !== 'connected';
  }

  // Phases: idle (can send), waiting (sent, no turn_start yet), streaming, resuming. The input
  // is disabled in every phase but idle; keyboard focus parks on the conversation log meanwhile
  // (one Tab reaches Stop) and returns to the input when the turn ends.
  _setPhase(p) {
    const el = this._el;
    const active = this.shadowRoot.activeElement;
    this._phase = p;
    if (p === 'idle') el.stop.disabled = false;
    this._syncSend();
    if (p !== 'idle' && active === el.input) {
      el.thread.focus({ preventScroll: true });
      this._returnFocus = true;
    }
    if (p === 'idle' && this._returnFocus) {
      this._returnFocus = false;
      const doc = document.activeElement;
      const a = this.shadowRoot.activeElement;
      const lost = !doc || doc === document.body;
      if (lost || (doc === this && (!a || a === el.thread || a === el.stop || a === el.send))) el.input.focus({ preventScroll: true });
    }
    this.toggleAttribute('data-busy', p !== 'idle');
  }

  _setStatus(s) {
    this._status = s;
    if (!this._built) return;
    const text = { idle: 'Ready', connecting: 'Connecting…', connected: 'Online', reconnecting: 'Reconnecting…', offline: 'Offline' }[s] || s;
    this._el.statusRow.dataset.status = s;
    this._el.statusText.textContent = text;
    this._el.retry.hidden = s !== 'offline';
    this.setAttribute('data-status', s);
    this._syncSend();
    this._emit('status', { status: s });
  }

  _emit(name, detail) {
    this.dispatchEvent(new CustomEvent('trilemma:' + name, { detail, bubbles: true, composed: true }));
  }

  // -- transcript and rendering
  _push(item) {
    this._items.push(item);
    if (item.kind === 'assistant' && item.turnId) this._byTurn.set(item.turnId, item);
    this._renderItem(item);
    this._hideSuggestions();
    this._scrollToEnd(true);
    return item;
  }

  _notice(text, level = 'info') {
    const it = { kind: 'notice', level, text };
    this._push(it);
    this._saveSoon();
    return it;
  }

  _renderAll() {
    const thread = this._el.thread;
    thread.textContent = '';
    this._greetingEl = null;
    if (this.greeting) {
      const g = document.createElement('div');
      g.className = 'msg assistant greeting';
      const b = document.createElement('div');
      b.className = 'bubble md';
      renderMarkdown(b, this.greeting);
      g.appendChild(b);
      thread.appendChild(g);
      this._greetingEl = g;
    }
    this._suggestEl = document.createElement('div');
    this._suggestEl.className = 'suggestions';
    thread.appendChild(this._suggestEl);
    this._renderSuggestions();
    for (const it of this._items) { it.node = null; this._renderItem(it); }
    this._renderDebugFooter();
  }

  _renderSuggestions() {
    if (!this._suggestEl) return;
    this._suggestEl.textContent = '';
    if (this._items.some((i) => i.kind === 'user')) { this._suggestEl.hidden = true; return; }
    this._suggestEl.hidden = false;
    for (const s of this.suggestions || []) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'chip';
      b.textContent = s;
      b.addEventListener('click', () => { if (this._phase === 'idle') { this._el.input.value = s; this.send(); } });
      this._suggestEl.appendChild(b);
    }
  }

  _hideSuggestions() { if (this._suggestEl && this._items.some((i) => i.kind === 'user')) this._suggestEl.hidden = true; }

  _renderItem(it) {
    const thread = this._el.thread;
    if (it.kind === 'user') {
      const m = document.createElement('div');
      m.className = 'msg user' + (it.failed ? ' failed' : '');
      m.dataset.role = 'user';
      const sr = document.createElement('span');
      sr.className = 'sr-only';
      sr.textContent = 'You said: ';
      const b = document.createElement('div');
      b.className = 'bubble';
      b.textContent = it.text;
      m.append(sr, b);
      if (it.failed) {
        const note = document.createElement('p');
        note.className = 'msg-note';
        note.textContent = 'Not sent';
        m.appendChild(note);
      }
      it.node = m;
    } else if (it.kind === 'notice') {
      const m = document.createElement('div');
      m.className = 'notice' + (it.level === 'error' ? ' error' : '');
      m.dataset.role = 'notice';
      if (it.level === 'error') {
        const sr = document.createElement('span');
        sr.className = 'sr-only';
        sr.textContent = 'Error: ';
        m.appendChild(sr);
      }
      m.appendChild(document.createTextNode(it.text));
      it.node = m;
    } else {
      const m = document.createElement('div');
      m.className = 'msg assistant';
      m.dataset.role = 'assistant';
      const sr = document.createElement('span');
      sr.className = 'sr-only';
      sr.textContent = 'Assistant: ';
      const b = document.createElement('div');
      b.className = 'bubble md';
      m.append(sr, b);
      it.node = m;
      it.body = b;
      it.typingEl = null;
      it.workEl = null;
      it.productsEl = null;
      it.productsShown = null;
      this._renderAssistant(it);
    }
    thread.appendChild(it.node);
  }

  _renderAssistant(it) {
    const m = it.node;
    if (!m) return;
    m.dataset.turnId = it.turnId || '';
    m.dataset.state = it.done ? 'done' : 'streaming';
    m.dataset.seq = String(it.seq);
    if (it.finish) m.dataset.finish = it.finish;
    m.setAttribute('aria-busy', it.done ? 'false' : 'true');
    renderMarkdown(it.body, it.text, !it.done);
    this._renderProducts(it);
    this._renderWork(it);
    const empty = it.done && !it.text;
    const hasProducts = !!(it.products && it.products.length);
    // while a status line stands in for the answer, the empty bubble is not shown
    it.body.hidden = empty || (!it.text && !!it.status);
    m.classList.toggle('widen', hasProducts || !!it.body.querySelector('.md-table,pre'));
    const typing = !it.done && !it.text && !it.status;
    if (typing && !it.typingEl) {
      const t = document.createElement('div');
      t.className = 'typing';
      t.setAttribute('role', 'img');
      t.setAttribute('aria-label', 'Assistant is typing');
      t.append(document.createElement('span'), document.createElement('span'), document.createElement('span'));
      it.body.appendChild(t);
      it.typingEl = t;
    } else if (!typing && it.typingEl) {
      it.typingEl.remove();
      it.typingEl = null;
    }
    if (it.typingEl && it.typingEl.parentNode !== it.body) it.body.appendChild(it.typingEl);
    let note = m.querySelector(':scope > .msg-note');
    const noteText = it.note || '';
    if (noteText && !note) { note = document.createElement('p'); note.className = 'msg-note'; m.appendChild(note); }
    if (note) { if (noteText) note.textContent = noteText; else note.remove(); }
    this._renderMeta(it);
    m.hidden = empty && !noteText && !hasProducts && !(this.debug && it.meta);
  }

  // The status line of a turn in progress: a role="status" region that exists from the start of
  // the turn (a live region announces changes, not its own insertion) and holds the latest
  // stage's words until the first delta, the turn's end or an error. Removed when the turn ends.
  _renderWork(it) {
    if (it.done) {
      if (it.workEl) { it.workEl.remove(); it.workEl = null; }
      return;
    }
    let w = it.workEl;
    if (!w) {
      w = it.workEl = document.createElement('div');
      w.className = 'work';
      w.setAttribute('role', 'status');
      w.setAttribute('aria-live', 'polite');
      w.setAttribute('aria-atomic', 'true');
      it.body.parentNode.insertBefore(w, it.body);
    }
    const text = it.status ? statusText(it.status.stage, it.status.tool) : '';
    if (w.dataset.text === text) return;
    w.dataset.text = text;
    w.dataset.stage = it.status ? String(it.status.stage) : '';
    w.textContent = '';
    if (!text) return;
    const line = document.createElement('div');
    line.className = 'work-line';
    const dots = document.createElement('span');
    dots.className = 'work-dots';
    dots.setAttribute('aria-hidden', 'true');
    dots.append(document.createElement('span'), document.createElement('span'), document.createElement('span'));
    const words = document.createElement('span');
    words.className = 'work-text';
    words.textContent = text;
    line.append(dots, words);
    w.appendChild(line);
  }

  // The turn's product slate, above the answer; rebuilt only when a new slate arrives.
  _renderProducts(it) {
    if (it.productsShown === (it.products || null)) return;
    it.productsShown = it.products || null;
    if (it.productsEl) { it.productsEl.remove(); it.productsEl = null; }
    if (!it.products || !it.products.length) return;
    const ul = document.createElement('ul');
    ul.className = 'products';
    ul.setAttribute('role', 'list'); // list-style:none drops the list role in some browsers
    ul.setAttribute('aria-label', it.products.length === 1 ? '1 product' : it.products.length + ' products');
    for (const p of it.products) ul.appendChild(productCard(p, (x) => this._pickProduct(x)));
    it.body.parentNode.insertBefore(ul, it.workEl || it.body);
    it.productsEl = ul;
  }

  _pickProduct(p) {
    this.dispatchEvent(new CustomEvent('trilemma-product', { detail: { id: p.id, title: p.title }, bubbles: true, composed: true }));
  }

  _renderMeta(it) {
    if (!it.node) return;
    let meta = it.node.querySelector(':scope > .msg-meta');
    if (!this.debug || !it.meta) { if (meta) meta.remove(); return; }
    if (!meta) { meta = document.createElement('p'); meta.className = 'msg-meta'; it.node.appendChild(meta); }
    meta.textContent = this._metaText(it.meta);
  }

  _metaText(e) {
    const u = e.usage || {};
    const lat = e.latency_ms || {};
    const parts = [
      'first token ' + formatMs(lat.first_token),
      'total ' + formatMs(lat.total),
      `tokens ${u.input_tokens ?? 0} in` + (u.cached_input_tokens ? ` (${u.cached_input_tokens} cached)` : '') + ` / ${u.output_tokens ?? 0} out`,
      'cost ' + (formatCost(e.cost) || '–'),
    ];
    return parts.join(' · ');
  }

  _renderDebugFooter() {
    if (!this._built) return;
    const d = this._el.debug;
    d.hidden = !this.debug;
    if (!this.debug) return;
    const last = [...this._items].reverse().find((i) => i.kind === 'assistant' && i.meta);
    d.textContent = last
      ? `Last turn: ${this._metaText(last.meta)} · conversation ${formatCost({ micros: this._total.micros, currency: this._total.currency })} over ${this._total.turns} turn${this._total.turns === 1 ? '' : 's'}`
      : 'Debug: turn timings, tokens and cost appear here.';
  }

  _showTyping(on) {
    if (!on) return;
    // a placeholder answer (no turn id yet) shows the typing indicator before turn_start
    const cur = this._current;
    if (!cur || cur.rec) return;
    const rec = { kind: 'assistant', turnId: null, text: '', seq: 0, done: false, userId: cur.userId };
    cur.rec = rec;
    cur.placeholder = true;
    this._push(rec);
  }

  // Follow the answer while the reader is at the bottom; leave them alone once they scroll up.
  _scrollToEnd(force) {
    const t = this._el && this._el.thread;
    if (!t) return;
    if (force) this._stick = true;
    if (this._stick !== false) t.scrollTop = t.scrollHeight;
  }

  // -- persistence (sessionStorage: this tab only, survives reloads)
  _key() { return STORAGE_PREFIX + this.server; }

  _load() {
    try { return JSON.parse(sessionStorage.getItem(this._key()) || 'null'); } catch { return null; }
  }

  _restore() {
    const s = this._load();
    if (!s || s.v !== VERSION) return;
    this._cid = typeof s.cid === 'string' && /^[0-9a-f]{32}$/.test(s.cid) ? s.cid : null;
    this._items = [];
    this._byTurn.clear();
    for (const x of Array.isArray(s.items) ? s.items : []) {
      if (x.kind === 'user' && typeof x.text === 'string') this._items.push({ kind: 'user', id: String(x.id || ''), text: x.text, failed: !!x.failed });
      else if (x.kind === 'notice' && typeof x.text === 'string') this._items.push({ kind: 'notice', level: x.level === 'error' ? 'error' : 'info', text: x.text });
      else if (x.kind === 'assistant' && typeof x.text === 'string') {
        const rec = { kind: 'assistant', turnId: typeof x.turnId === 'string' ? x.turnId : null, text: x.text,
          seq: Number.isInteger(x.seq) ? x.seq : 0, done: !!x.done, finish: x.finish || undefined,
          note: typeof x.note === 'string' ? x.note : '', meta: x.meta || null, userId: x.userId || null };
        // stored image URLs are absolute already; the slate is checked again like a new one
        const products = normalizeProducts(x.products, null);
        if (products.length) rec.products = products;
        if (!rec.turnId && !rec.done) continue; // a placeholder that never got a turn
        this._items.push(rec);
        if (rec.turnId) this._byTurn.set(rec.turnId, rec);
      }
    }
    if (s.total && typeof s.total.micros === 'number') this._total = s.total;
    // a turn that was running when the page went away: continue it through resume
    const last = this._items[this._items.length - 1];
    if (last && last.kind === 'assistant' && !last.done) this._pending = { userId: last.userId, rec: last };
    else if (last && last.kind === 'user' && !last.failed && s.waiting) this._pending = { userId: last.id, rec: null, text: last.text };
    if (this._pending) this._setPhase('resuming');
    if (this._built) this._renderAll();
  }

  _saveSoon() {
    if (this._saveTimer) return;
    this._saveTimer = setTimeout(() => this._save(), 250);
  }

  _save() {
    clearTimeout(this._saveTimer);
    this._saveTimer = 0;
    const items = this._items.slice(-MAX_STORED_ITEMS).map((i) => {
      if (i.kind === 'user') return { kind: 'user', id: i.id, text: i.text, failed: !!i.failed };
      if (i.kind === 'notice') return { kind: 'notice', level: i.level, text: i.text };
      return { kind: 'assistant', turnId: i.turnId, text: i.text, seq: i.seq, done: i.done, finish: i.finish,
               note: i.note || '', meta: i.meta || null, userId: i.userId || null, products: i.products || null };
    });
    const waiting = !!(this._current && !this._current.rec?.turnId) || !!(this._pending && !this._pending.rec);
    const data = { v: VERSION, cid: this._cid, items, total: this._total, waiting,
                   open: this._built && !this._el.panel.hidden && this.hasAttribute('launcher') };
    try { sessionStorage.setItem(this._key(), JSON.stringify(data)); } catch { /* storage full or blocked */ }
  }

  // -- connection
  _ensureConnection() {
    this._wantConnection = true;
    if (!this._ws && !this._reconnectTimer && !this._connecting) this._connect();
  }

  _reconnectNow() {
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = 0;
    this._attempts = 0;
    this._wantConnection = true;
    if (this._ws) { const ws = this._ws; this._ws = null; ws.close(1000, 'reconnect'); this._dropped(); }
    this._connect();
  }

  async _connect() {
    if (this._connecting) return;
    this._connecting = true;
    this._setStatus(this._attempts ? (this._attempts > 4 || navigator.onLine === false ? 'offline' : 'reconnecting') : 'connecting');
    let url = this.server;
    try {
      if (this._opts.tokenProvider) {
        const token = await this._opts.tokenProvider();
        if (token) url += (url.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(String(token));
      }
    } catch (e) {
      this._connecting = false;
      if (!this._tokenNoticeShown) {
        this._tokenNoticeShown = true;
        this._notice('The chat could not sign you in. It will keep trying.', 'error');
      }
      this._scheduleReconnect();
      return;
    }
    this._connecting = false;
    if (!this._wantConnection || !this.isConnected) return;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      this._scheduleReconnect();
      return;
    }
    this._ws = ws;
    this._resumeSent = false;
    this._resumeTries = 0;
    ws.onmessage = (e) => {
      if (this._ws !== ws || typeof e.data !== 'string') return;
      let m;
      try { m = JSON.parse(e.data); } catch { return; }
      if (m && typeof m.type === 'string') this._onEvent(m);
    };
    ws.onclose = () => {
      if (this._ws !== ws) return;
      this._ws = null;
      this._dropped();
      if (this._wantConnection) this._scheduleReconnect();
    };
  }

  _scheduleReconnect() {
    clearTimeout(this._reconnectTimer);
    this._attempts++;
    // jittered exponential backoff: half fixed, half random, capped
    const cap = Math.min(15000, 500 * 2 ** Math.min(this._attempts - 1, 6));
    const delay = cap / 2 + Math.random() * (cap / 2);
    this._setStatus(this._attempts > 4 || navigator.onLine === false ? 'offline' : 'reconnecting');
    this._reconnectTimer = setTimeout(() => { this._reconnectTimer = 0; this._connect(); }, delay);
  }

  _dropped() {
    clearTimeout(this._resumeTimer);
    clearTimeout(this._resumeWatchdog);
    this._resumeSent = false;
    this._replaying = null;
    this._discardTurn = null;
    // a turn in flight is continued by resume once the connection is back; what it was doing
    // is not known any more (the typing indicator stands in until the answer resumes)
    if (this._current) {
      const cur = this._current;
      // the answer goes on at the server (detach grace) and is resumed: say so, keep what arrived
      if (cur.rec && !cur.rec.done) { cur.rec.status = { stage: 'reconnecting' }; this._renderAssistant(cur.rec); }
      this._pending = { userId: cur.userId, rec: cur.placeholder ? null : cur.rec, placeholder: cur.placeholder ? cur.rec : null,
                        text: this._items.find((i) => i.kind === 'user' && i.id === cur.userId)?.text, stopRequested: cur.stopRequested };
      this._current = null;
    }
    if (this._pending || this._phase !== 'idle') this._setPhase('resuming');
    this._save();
  }

  _wsSend(obj) {
    if (!this._ws || this._ws.readyState !== 1) return false;
    this._ws.send(JSON.stringify(obj));
    return true;
  }

  // -- protocol events
  _onEvent(m) {
    switch (m.type) {
      case 'session': return this._onSession(m);
      case 'resumed': return this._onResumed(m);
      case 'turn_start': return this._onTurnStart(m);
      case 'status': return this._onWorkStatus(m);
      case 'products': return this._onProducts(m);
      case 'delta': return this._onDelta(m);
      case 'turn_end': return this._onTurnEnd(m);
      case 'error': return this._onError(m);
      default: return undefined; // unknown events are ignored (forward compatibility)
    }
  }

  _onSession(m) {
    this._attempts = 0;
    this._tokenNoticeShown = false;
    if (m.limits && Number.isInteger(m.limits.max_text_bytes)) this._limits = m.limits;
    this._sessionCid = m.conversation_id;
    this._setStatus('connected');
    this._emit('session', { conversationId: m.conversation_id, user: m.user });
    const hasHistory = this._items.some((i) => i.kind === 'assistant' && i.turnId);
    if (this._cid && (hasHistory || this._pending)) {
      this._resumeTries = 0;
      this._sendResume();
    } else {
      this._cid = m.conversation_id;
      this._afterResume();
    }
  }

  _lastKnownTurn() {
    if (this._pending && this._pending.rec && this._pending.rec.turnId) return this._pending.rec;
    for (let k = this._items.length - 1; k >= 0; k--) {
      const i = this._items[k];
      if (i.kind === 'assistant' && i.turnId) return i;
    }
    return null;
  }

  _sendResume(afterSeq) {
    const last = this._lastKnownTurn();
    const after = afterSeq ?? (last ? last.seq : 0);
    this._setPhase('resuming');
    this._resumeSent = true;
    this._wsSend({ type: 'resume', conversation_id: this._cid, after_seq: after });
    // a server that never answers must not leave the chat stuck: reconnect and try again (a
    // server may first wait for the turn running on another of its processes: up to its
    // resume_wait_ms, 60 s by default)
    clearTimeout(this._resumeWatchdog);
    this._resumeWatchdog = setTimeout(() => { if (this._resumeSent && this._ws) this._reconnectNow(); }, RESUME_WATCHDOG_MS);
  }

  _onResumed(m) {
    this._resumeSent = false;
    clearTimeout(this._resumeWatchdog);
    this._discardTurn = null;
    this._cid = m.conversation_id || this._cid;
    this._emit('resumed', { conversationId: this._cid, turnId: m.turn_id, afterSeq: m.after_seq, messages: m.messages });
    if (!m.turn_id) { this._resumeDone(); return; }
    let rec = this._byTurn.get(m.turn_id);
    const want = rec ? rec.seq : 0;
    if (m.after_seq !== want) {
      // the server's last turn is not the one we asked about: ask again from what we have of it
      this._discardTurn = m.turn_id;
      this._sendResume(want);
      return;
    }
    if (!rec) {
      // a turn we have not seen (our message's answer, or history after the transcript was lost)
      const p = this._pending;
      if (p && !p.rec) {
        rec = p.placeholder || { kind: 'assistant', text: '', seq: 0, done: false, userId: p.userId };
        rec.turnId = m.turn_id;
        if (!p.placeholder) this._push(rec);
        p.rec = rec;
        p.placeholder = null;
      } else {
        rec = { kind: 'assistant', turnId: m.turn_id, text: '', seq: 0, done: false, userId: null };
        this._push(rec);
      }
      this._byTurn.set(m.turn_id, rec);
      this._renderAssistant(rec);
    }
    this._replaying = rec;
    // the replayed deltas and turn_end follow; _onTurnEnd finishes the resume
  }

  _resumeDone() {
    this._replaying = null;
    const p = this._pending;
    if (p && !(p.rec && p.rec.done)) {
      // our last turn is not (yet) stored: the server commits a cut turn a moment after the
      // disconnect, so ask again a few times before calling it lost
      if (this._resumeTries < RESUME_RETRY_MS.length) {
        const wait = RESUME_RETRY_MS[this._resumeTries++];
        clearTimeout(this._resumeTimer);
        this._resumeTimer = setTimeout(() => { if (this._ws) this._sendResume(); }, wait);
        return;
      }
      if (p.rec) {
        p.rec.done = true;
        p.rec.finish = 'cancelled';
        p.rec.note = 'This answer was interrupted and could not be recovered.';
        this._renderAssistant(p.rec);
      } else {
        if (p.placeholder) this._removeItem(p.placeholder);
        const u = this._items.find((i) => i.kind === 'user' && i.id === p.userId);
        if (u) this._markFailed(u);
        this._notice('Your last message did not reach the assistant. Please send it again.', 'error');
      }
    }
    this._pending = null;
    this._afterResume();
  }

  _afterResume() {
    this._setPhase('idle');
    this._save();
    this._scrollToEnd(false);
  }

  _removeItem(it) {
    const k = this._items.indexOf(it);
    if (k >= 0) this._items.splice(k, 1);
    if (it.node) it.node.remove();
    if (it.turnId) this._byTurn.delete(it.turnId);
  }

  _markFailed(u) {
    u.failed = true;
    const old = u.node;
    this._renderItem(u);
    if (old && old.parentNode) { old.parentNode.replaceChild(u.node, old); }
    if (!this._el.input.value) { this._el.input.value = u.text; this._autosize(); }
  }

  _onTurnStart(m) {
    const cur = this._current;
    if (!cur || (m.id && m.id !== cur.userId)) return;
    let rec = cur.rec;
    if (!rec) { rec = { kind: 'assistant', text: '', seq: 0, done: false, userId: cur.userId }; this._push(rec); }
    rec.turnId = m.turn_id;
    cur.placeholder = false;
    this._byTurn.set(m.turn_id, rec);
    this._setPhase('streaming');
    this._renderAssistant(rec);
    this._save();
    this._emit('turn-start', { turnId: m.turn_id, id: m.id });
    if (cur.stopRequested) this._wsSend({ type: 'cancel', turn_id: m.turn_id });
  }

  // `status`: what the assistant is doing before its answer starts; the latest one wins, and
  // none is shown once the first delta has arrived.
  _onWorkStatus(m) {
    if (m.turn_id === this._discardTurn) return;
    const rec = this._byTurn.get(m.turn_id);
    if (!rec || rec.done || rec.seq > 0) return;
    rec.status = { stage: typeof m.stage === 'string' ? m.stage : '', tool: typeof m.tool === 'string' ? m.tool : undefined };
    this._renderAssistant(rec);
    this._scrollToEnd();
    this._emit('stage', { turnId: m.turn_id, stage: rec.status.stage, tool: rec.status.tool, text: statusText(rec.status.stage, rec.status.tool) });
  }

  // `products`: the slate the answer is about, shown as cards above it (a later slate of the
  // same turn replaces the earlier one). A slate with no usable item is ignored.
  _onProducts(m) {
    if (m.turn_id === this._discardTurn) return;
    const rec = this._byTurn.get(m.turn_id);
    if (!rec || rec.done) return;
    const items = normalizeProducts(m.items, this._imageBase());
    if (!items.length) return;
    rec.products = items;
    this._renderAssistant(rec);
    this._scrollToEnd();
    this._saveSoon();
    this._emit('products', { turnId: m.turn_id, items: items.map((p) => ({ ...p, specs: p.specs && [...p.specs] })) });
  }

  // relative image paths are relative to the chat server that sent them (its http(s) address)
  _imageBase() {
    try {
      const u = new URL(this.server);
      return (u.protocol === 'wss:' ? 'https://' : 'http://') + u.host + '/';
    } catch {
      return null;
    }
  }

  _clearWorkStatus(rec) {
    if (!rec || !rec.status) return;
    rec.status = null;
    this._renderAssistant(rec);
  }

  _onDelta(m) {
    if (m.turn_id === this._discardTurn) return;
    const rec = this._byTurn.get(m.turn_id);
    if (!rec || rec.done || typeof m.text !== 'string') return;
    if (m.seq <= rec.seq) return; // already shown (a replay of what we rendered)
    rec.text += m.text;
    rec.seq = m.seq;
    rec.status = null; // the answer itself replaces the status line
    this._renderAssistant(rec);
    this._scrollToEnd();
    this._saveSoon();
    this._emit('delta', { turnId: m.turn_id, seq: m.seq, text: m.text, replayed: this._replaying === rec });
  }

  _onTurnEnd(m) {
    if (m.turn_id === this._discardTurn) return;
    const rec = this._byTurn.get(m.turn_id);
    const replay = this._replaying;
    if (rec && !rec.done) {
      rec.done = true;
      rec.status = null;
      rec.finish = m.finish_reason;
      rec.meta = { usage: m.usage, cost: m.cost, latency_ms: m.latency_ms };
      const stopped = (this._current && this._current.rec === rec && this._current.stopRequested) ||
                      (this._pending && this._pending.rec === rec && this._pending.stopRequested);
      if (m.finish_reason === 'cancelled') rec.note = stopped ? 'Stopped.' : 'Answer interrupted (the connection was lost).';
      else if (m.finish_reason === 'length') rec.note = 'The answer reached its length limit.';
      else if (m.finish_reason === 'error' && rec.text) rec.note = 'The answer ended early.';
      if (m.cost && typeof m.cost.micros === 'number') {
        this._total.micros += m.cost.micros;
        this._total.currency = m.cost.currency || this._total.currency;
        this._total.turns += 1;
      }
      this._renderAssistant(rec);
      this._renderDebugFooter();
      this._scrollToEnd();
      this._emit('turn-end', { turnId: m.turn_id, finishReason: m.finish_reason, usage: m.usage, cost: m.cost,
                               latencyMs: m.latency_ms, replayed: !!m.replayed, text: rec.text });
    }
    if (this._current && this._current.rec === rec) {
      this._current = null;
      this._setPhase('idle');
      this._save();
    }
    if (replay && (replay === rec || m.replayed)) this._resumeDone();
  }

  // Before a resume's answer: the turn we were following died with its server process. Its
  // partial text stays, marked; the resume's own answer follows (`resumed` or an error).
  _onInterrupted(m) {
    const rec = typeof m.turn_id === 'string' ? this._byTurn.get(m.turn_id) : null;
    if (!rec || rec.done) return;
    rec.done = true;
    rec.finish = 'cancelled';
    rec.status = null;
    rec.note = errorText('turn_interrupted');
    this._renderAssistant(rec);
    if (this._pending && this._pending.rec === rec) this._pending = null;
    this._save();
  }

  _onError(m) {
    const code = typeof m.code === 'string' ? m.code : 'internal';
    this._emit('error', { code, message: m.message, id: m.id, turnId: m.turn_id });
    if (code === 'turn_interrupted') return this._onInterrupted(m);
    // an error ends the status line of the turn it is about
    this._clearWorkStatus(typeof m.turn_id === 'string' ? this._byTurn.get(m.turn_id) : null);
    if (this._current && m.id && m.id === this._current.userId) this._clearWorkStatus(this._current.rec);
    // resume failures (errors about a resume carry no message id)
    if (this._resumeSent && !m.id) {
      this._resumeSent = false;
      clearTimeout(this._resumeWatchdog);
      if (['storage_unavailable', 'rate_limited', 'turn_in_progress', 'internal'].includes(code)) {
        if (this._resumeTries < RESUME_RETRY_MS.length) {
          const wait = RESUME_RETRY_MS[this._resumeTries++] * 2;
          clearTimeout(this._resumeTimer);
          this._resumeTimer = setTimeout(() => { if (this._ws) this._sendResume(); }, wait);
          return;
        }
        this._notice('Your earlier conversation could not be restored right now; the assistant will not remember it.', 'error');
      } else if (['resume_unavailable', 'unknown_conversation', 'forbidden'].includes(code)) {
        this._notice(errorText(code), code === 'resume_unavailable' ? 'info' : 'error');
      } else {
        this._notice('Your earlier conversation could not be restored, so a new one has started.', 'error');
      }
      this._cid = this._sessionCid; // the session's own (new) conversation continues
      const p = this._pending;
      if (p) {
        if (p.rec && !p.rec.done) {
          p.rec.done = true;
          p.rec.finish = 'cancelled';
          p.rec.note = 'This answer was interrupted and could not be recovered.';
          this._renderAssistant(p.rec);
        } else if (!p.rec) {
          if (p.placeholder) this._removeItem(p.placeholder);
          const u = this._items.find((i) => i.kind === 'user' && i.id === p.userId);
          if (u) this._markFailed(u);
        }
        this._pending = null;
      }
      this._afterResume();
      return;
    }
    const cur = this._current;
    const started = !!(cur && cur.rec && cur.rec.turnId);
    const aboutCurrent = cur && ((m.id && m.id === cur.userId) || (started && m.turn_id === cur.rec.turnId));
    if (cur && !started && (aboutCurrent || (!m.id && !m.turn_id && code === 'rate_limited'))) {
      // the message was refused before its turn started
      if (cur.placeholder && cur.rec) this._removeItem(cur.rec);
      const u = this._items.find((i) => i.kind === 'user' && i.id === cur.userId);
      this._current = null;
      if (u) this._markFailed(u);
      this._notice(errorText(code, this._limits), 'error');
      this._setPhase('idle');
      this._save();
      return;
    }
    if (cur && started && aboutCurrent) {
      this._notice(errorText(code, this._limits), 'error');
      return; // the turn's turn_end follows
    }
    if (code === 'unknown_turn') return void this._notice(errorText(code), 'info');
    this._notice(errorText(code, this._limits), 'error');
  }
}

if (typeof customElements !== 'undefined' && !customElements.get('trilemma-chat')) {
  customElements.define('trilemma-chat', TrilemmaChat);
}

// Mount a floating launcher from script: mount({ title, tokenProvider, theme, ... }).
export function mount(options = {}) {
  const el = document.createElement('trilemma-chat');
  el.setAttribute('launcher', '');
  el.configure(options);
  (options.container || document.body).appendChild(el);
  return el;
}

export default TrilemmaChat;
