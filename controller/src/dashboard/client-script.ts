/**
 * The dashboard's only script: live updates over EventSource, "15 s ago" kept current from
 * timestamps, bake countdowns, search as you type on the fleet page, confirm() for destructive
 * actions. Pages are complete without it; it only refreshes what is already there.
 *
 * Each `update` event is a LiveMessage (live-state.ts): `parts` {elementId: html} replaced whole,
 * and `lists` {elementId: {rows: {key: html}, order?: [key]}} whose children carry data-key: rows
 * are replaced or added, and when `order` is given, put in that order and the others removed.
 */
export const DASHBOARD_JS = `(() => {
  'use strict';
  const state = document.getElementById('live-state');
  const say = (text) => { if (state) state.textContent = text; };
  const pad = (n) => String(n).padStart(2, '0');
  const countdown = (s) => s >= 60 ? Math.floor(s / 60) + ' min ' + pad(s % 60) + ' s' : s + ' s';

  // Relative times, from the server's clock: the page says what time it was rendered at.
  const serverNow = Number(document.body.getAttribute('data-server-now'));
  const skew = Number.isFinite(serverNow) && serverNow > 0 ? serverNow - Date.now() : 0;
  const ago = (iso) => {
    const s = Math.max(0, Math.round((Date.now() + skew - Date.parse(iso)) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    if (s < 86400) return Math.floor(s / 3600) + ' h ago';
    return Math.floor(s / 86400) + ' d ago';
  };
  const refreshTimes = () => {
    for (const element of document.querySelectorAll('time[data-ago]')) {
      const text = ago(element.getAttribute('datetime'));
      if (element.textContent !== text) element.textContent = text;
    }
  };

  const parse = (html) => { const template = document.createElement('template'); template.innerHTML = html; return template.content.firstElementChild; };
  const applyList = (list, change) => {
    const byKey = new Map();
    for (const child of list.children) byKey.set(child.getAttribute('data-key'), child);
    for (const key of Object.keys(change.rows)) {
      const row = parse(change.rows[key]);
      const old = byKey.get(key);
      if (old) old.replaceWith(row); else list.appendChild(row);
      byKey.set(key, row);
    }
    if (!change.order) return;
    const keep = new Set(change.order);
    for (const [key, row] of byKey) if (!keep.has(key)) row.remove();
    let cursor = list.firstElementChild;
    for (const key of change.order) {
      const row = byKey.get(key);
      if (!row) continue;
      if (row === cursor) cursor = cursor.nextElementSibling; else list.insertBefore(row, cursor);
    }
  };
  const apply = (message) => {
    // Keep keyboard focus on the same link or button across a re-render.
    const active = document.activeElement;
    const key = active && (active.getAttribute('data-focus-key') || active.getAttribute('href'));
    for (const id of Object.keys(message.parts || {})) {
      const element = document.getElementById(id);
      if (element) element.innerHTML = message.parts[id];
    }
    for (const id of Object.keys(message.lists || {})) {
      const list = document.getElementById(id);
      if (list) applyList(list, message.lists[id]);
    }
    refreshTimes();
    if (key && active && !document.contains(active)) {
      for (const candidate of document.querySelectorAll('[data-focus-key], a[href]')) {
        if ((candidate.getAttribute('data-focus-key') || candidate.getAttribute('href')) === key) { candidate.focus(); break; }
      }
    }
  };

  let source = null;
  let updates = 0;
  const connect = () => {
    const root = document.querySelector('[data-live]');
    if (source) source.close();
    source = null;
    if (!root || !('EventSource' in window)) return;
    const current = new EventSource(root.getAttribute('data-live'));
    source = current;
    current.addEventListener('open', () => say('Live: this page updates by itself.'));
    current.addEventListener('error', () => say(current.readyState === EventSource.CLOSED ? 'Not live any more: reload the page.' : 'Reconnecting…'));
    current.addEventListener('update', (event) => {
      apply(JSON.parse(event.data));
      updates += 1;
      document.documentElement.setAttribute('data-live-updates', String(updates));
    });
  };
  connect();

  // Search as you type: fetch the same page the form would load and swap in its results, so the
  // search box keeps focus and what was typed meanwhile.
  const search = document.querySelector('form[data-fleet-search]');
  if (search && window.fetch && window.DOMParser) {
    let timer = null;
    let asked = 0;
    const run = async () => {
      const query = new URLSearchParams();
      for (const [name, value] of new FormData(search)) if (typeof value === 'string' && value.trim()) query.set(name, value.trim());
      const text = query.toString();
      const url = search.getAttribute('action') + (text ? '?' + text : '');
      const ticket = ++asked;
      const response = await fetch(url, { credentials: 'same-origin', headers: { accept: 'text/html' } });
      if (!response.ok || ticket !== asked) return;
      const fresh = new DOMParser().parseFromString(await response.text(), 'text/html');
      if (ticket !== asked) return;
      for (const id of ['fleet-rollouts', 'fleet-counts', 'fleet-table', 'fleet-pager']) {
        const now = document.getElementById(id);
        const next = fresh.getElementById(id);
        if (now && next) now.replaceWith(document.importNode(next, true));
      }
      const root = document.querySelector('[data-live]');
      const freshRoot = fresh.querySelector('[data-live]');
      if (root && freshRoot) root.setAttribute('data-live', freshRoot.getAttribute('data-live'));
      const freshBody = fresh.body && fresh.body.getAttribute('data-server-now');
      if (freshBody) document.body.setAttribute('data-server-now', freshBody);
      history.replaceState(null, '', url);
      refreshTimes();
      connect();
      document.documentElement.setAttribute('data-search-results', text);
    };
    const later = () => { clearTimeout(timer); timer = setTimeout(() => { run().catch(() => search.submit()); }, 250); };
    search.addEventListener('input', (event) => { if (event.target && event.target.name === 'q') later(); });
    search.addEventListener('change', (event) => { if (event.target && event.target.tagName === 'SELECT') later(); });
    search.addEventListener('submit', (event) => { event.preventDefault(); clearTimeout(timer); run().catch(() => search.submit()); });
  }

  setInterval(() => {
    refreshTimes();
    for (const element of document.querySelectorAll('[data-countdown]')) {
      const left = Number(element.getAttribute('data-countdown'));
      if (left > 0) {
        element.setAttribute('data-countdown', String(left - 1));
        element.textContent = countdown(left - 1);
      }
    }
  }, 1000);
  refreshTimes();

  document.addEventListener('submit', (event) => {
    const form = event.target;
    const question = form instanceof HTMLFormElement ? form.getAttribute('data-confirm') : null;
    if (!question) return;
    if (!window.confirm(question)) { event.preventDefault(); return; }
    const confirmed = document.createElement('input');
    confirmed.type = 'hidden';
    confirmed.name = 'confirmed';
    confirmed.value = 'yes';
    form.appendChild(confirmed);
  });
})();
`;
