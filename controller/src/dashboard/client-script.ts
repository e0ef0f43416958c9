/**
 * The dashboard's only script: live updates over EventSource, bake countdowns, confirm() for
 * destructive actions. Pages are complete without it; it only refreshes what is already there.
 * Each `update` event is JSON {elementId: html}; the server renders the same fragments as the page.
 */
export const DASHBOARD_JS = `(() => {
  'use strict';
  const root = document.querySelector('[data-live]');
  const state = document.getElementById('live-state');
  const say = (text) => { if (state) state.textContent = text; };
  const pad = (n) => String(n).padStart(2, '0');
  const countdown = (s) => s >= 60 ? Math.floor(s / 60) + ' min ' + pad(s % 60) + ' s' : s + ' s';
  if (root && 'EventSource' in window) {
    let updates = 0;
    const source = new EventSource(root.getAttribute('data-live'));
    source.addEventListener('open', () => say('Live: this page updates by itself.'));
    source.addEventListener('error', () => say(source.readyState === EventSource.CLOSED ? 'Not live any more: reload the page.' : 'Reconnecting…'));
    source.addEventListener('update', (event) => {
      const parts = JSON.parse(event.data);
      // Keep keyboard focus on the same link or button across a re-render.
      const active = document.activeElement;
      const key = active && (active.getAttribute('data-focus-key') || active.getAttribute('href'));
      for (const id of Object.keys(parts)) {
        const element = document.getElementById(id);
        if (element) element.innerHTML = parts[id];
      }
      if (key && active && !document.contains(active)) {
        for (const candidate of document.querySelectorAll('[data-focus-key], a[href]')) {
          if ((candidate.getAttribute('data-focus-key') || candidate.getAttribute('href')) === key) { candidate.focus(); break; }
        }
      }
      updates += 1;
      document.documentElement.setAttribute('data-live-updates', String(updates));
    });
  }
  setInterval(() => {
    for (const element of document.querySelectorAll('[data-countdown]')) {
      const left = Number(element.getAttribute('data-countdown'));
      if (left > 0) {
        element.setAttribute('data-countdown', String(left - 1));
        element.textContent = countdown(left - 1);
      }
    }
  }, 1000);
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
