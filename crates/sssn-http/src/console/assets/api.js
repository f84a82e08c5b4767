// The console's HTTP client: every call carries the token the user gave, like any client.

export class Api {
  constructor(token) { this.token = token; }

  headers(extra = {}) { return { authorization: `Bearer ${this.token}`, ...extra }; }

  async get(path) {
    const r = await fetch(path, { headers: this.headers() });
    return this.decode(r, path);
  }

  async post(path, body) {
    const r = await fetch(path, {
      method: 'POST',
      headers: this.headers({ 'content-type': 'application/json' }),
      body: JSON.stringify(body),
    });
    return this.decode(r, path);
  }

  async decode(r, path) {
    const text = await r.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch { body = { detail: text }; }
    if (!r.ok) {
      const e = new Error(`${path}: ${r.status} ${body && body.detail ? body.detail : r.statusText}`);
      e.status = r.status;
      throw e;
    }
    return body;
  }

  // Server push of one channel (SSE over fetch, so the token goes in a header, which
  // EventSource cannot send). Calls onMessage(seq, message) for each; resolves when the
  // stream ends or `signal` aborts.
  async events(channel, after, signal, onMessage, onReady) {
    const q = after == null ? '' : `?after=${after}`;
    const r = await fetch(`/channels/${encodeURIComponent(channel)}/events${q}`,
      { headers: this.headers({ accept: 'text/event-stream' }), signal });
    if (!r.ok) throw new Error(`events: ${r.status}`);
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const ev = { event: 'message', data: [], id: null };
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const i = line.indexOf(':');
          const field = i < 0 ? line : line.slice(0, i);
          const val = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
          if (field === 'data') ev.data.push(val);
          else if (field === 'event') ev.event = val;
          else if (field === 'id') ev.id = val;
        }
        if (ev.event === 'ready') onReady(ev.id);
        else if (ev.event === 'message' && ev.data.length) onMessage(Number(ev.id), JSON.parse(ev.data.join('\n')));
      }
    }
  }
}

// The trace id of a message's W3C traceparent, if it has one.
export function traceOf(message) {
  const tp = message && message.metadata && message.metadata.traceparent;
  const m = typeof tp === 'string' && /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}/.exec(tp);
  return m ? m[1] : null;
}
