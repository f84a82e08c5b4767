// Draws the topology as an SVG graph: systems and channels in columns by their distance
// from the sources, an arrow for every write (system → channel) and read (channel → system).

const NS = 'http://www.w3.org/2000/svg';

function el(name, attrs = {}, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

// Nodes 's:<id>' (systems) and 'c:<id>' (channels); edges follow the data.
export function layout(topology) {
  const nodes = new Map();
  for (const c of topology.channels) nodes.set(`c:${c.id}`, { key: `c:${c.id}`, kind: 'channel', item: c });
  for (const s of topology.systems) nodes.set(`s:${s.id}`, { key: `s:${s.id}`, kind: 'system', item: s });
  const edges = [];
  for (const s of topology.systems) {
    for (const w of s.writes) if (nodes.has(`c:${w}`)) edges.push([`s:${s.id}`, `c:${w}`]);
    for (const r of s.reads) if (nodes.has(`c:${r}`)) edges.push([`c:${r}`, `s:${s.id}`]);
  }
  // Longest-path ranks, bounded so a cycle (request/response) cannot loop forever.
  const rank = new Map([...nodes.keys()].map(k => [k, 0]));
  for (let pass = 0; pass < nodes.size; pass++) {
    let changed = false;
    for (const [a, b] of edges) {
      if (rank.get(b) < rank.get(a) + 1 && rank.get(a) + 1 < nodes.size) { rank.set(b, rank.get(a) + 1); changed = true; }
    }
    if (!changed) break;
  }
  const columns = [];
  for (const n of nodes.values()) {
    const r = rank.get(n.key);
    (columns[r] ||= []).push(n);
  }
  return { nodes, edges, columns: columns.filter(Boolean) };
}

export function drawTopology(svg, topology, figures) {
  const { nodes, edges, columns } = layout(topology);
  const W = 150, H = 46, GX = 70, GY = 18;
  const height = Math.max(...columns.map(c => c.length), 1) * (H + GY) + GY;
  const width = columns.length * (W + GX) + GX;
  svg.replaceChildren();
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.style.height = `${Math.min(Math.max(height, 160), 600)}px`;
  const defs = el('defs');
  const marker = el('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto' });
  marker.append(el('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#8a93a6' }));
  defs.append(marker);
  svg.append(defs);
  const pos = new Map();
  columns.forEach((col, x) => {
    const top = (height - col.length * (H + GY) + GY) / 2;
    col.forEach((n, y) => pos.set(n.key, { x: GX / 2 + x * (W + GX), y: top + y * (H + GY) }));
  });
  for (const [a, b] of edges) {
    const p = pos.get(a), q = pos.get(b);
    const x1 = p.x + W, y1 = p.y + H / 2, x2 = q.x, y2 = q.y + H / 2, mx = (x1 + x2) / 2;
    svg.append(el('path', { class: 'edge', d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, 'data-edge': `${a}>${b}` }));
  }
  for (const n of nodes.values()) {
    const p = pos.get(n.key);
    const cls = n.kind === 'system' ? `system state-${n.item.state}` : 'channel';
    const g = el('g', { class: cls, transform: `translate(${p.x},${p.y})`, 'data-node': n.key });
    g.append(el('rect', { width: W, height: H, rx: n.kind === 'channel' ? 14 : 4 }));
    g.append(el('text', { x: 8, y: 18 }, n.item.id));
    const sub = n.kind === 'system'
      ? `${n.item.state.toLowerCase()} · ${figures.system(n.item.id)}`
      : `${n.item.kind.replace('_', ' ')} · ${figures.channel(n.item.id)}`;
    g.append(el('text', { x: 8, y: 36, class: 'sub' }, sub));
    svg.append(g);
  }
}

// One record's path as a time line: a bar per hop, from its time to the next hop's.
export function drawTrace(svg, hops) {
  svg.replaceChildren();
  if (!hops.length) return;
  const t0 = hops[0].at_ms, span = Math.max(hops[hops.length - 1].at_ms - t0, 1);
  const W = 1000, L = 10;
  svg.setAttribute('viewBox', `0 0 ${W + 2 * L} 90`);
  hops.forEach((h, i) => {
    const next = hops[i + 1] ? hops[i + 1].at_ms : h.at_ms;
    const x = L + ((h.at_ms - t0) / span) * W;
    const w = Math.max(((next - h.at_ms) / span) * W, 2);
    const y = 10 + (i % 3) * 24;
    svg.append(el('rect', { class: `hop ${h.kind}`, x, y, width: w, height: 14 }));
    svg.append(el('text', { x: x + 2, y: y + 26, class: 'sub' }, `${h.kind} ${h.channel} (${h.actor})`));
  });
}
