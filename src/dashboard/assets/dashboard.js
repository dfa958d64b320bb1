// Castellan dashboard: small progressive enhancement over server-rendered pages. Every page
// works without it; with it, times stay relative, job rows and job pages update live over SSE,
// the run form previews plans and resolves targets as you type, and copy buttons copy.
// Markup it inserts comes from the server's escaped templates; untrusted text goes in as text.
'use strict';

(function () {
  const UI = '/ui';
  const csrf = document.querySelector('meta[name="csrf-token"]')?.getAttribute('content') ?? '';

  function relative(at) {
    const seconds = Math.round((Date.now() - at) / 1000);
    const size = Math.abs(seconds);
    if (size < 5) return 'just now';
    const amount = size < 60 ? `${size} s` : size < 3600 ? `${Math.round(size / 60)} min` : size < 86400 ? `${Math.round(size / 3600)} h` : `${Math.round(size / 86400)} d`;
    return seconds >= 0 ? `${amount} ago` : `in ${amount}`;
  }

  function refreshTimes(root) {
    for (const el of root.querySelectorAll('time[data-relative]')) {
      const at = Date.parse(el.getAttribute('datetime') ?? '');
      if (!Number.isNaN(at)) el.textContent = relative(at);
    }
  }
  // Durations of running jobs count up ("12 s", "3 min 4 s", as the server words them).
  function words(ms) {
    if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
    const minutes = Math.floor(ms / 60000);
    if (minutes < 60) return `${minutes} min ${Math.round((ms % 60000) / 1000)} s`;
    return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }
  function refreshDurations(root) {
    for (const el of root.querySelectorAll('[data-running-since]')) {
      const since = Date.parse(el.getAttribute('data-running-since') ?? '');
      if (!Number.isNaN(since)) el.textContent = words(Date.now() - since);
    }
  }
  setInterval(() => {
    refreshTimes(document);
    refreshDurations(document);
  }, 5000);

  // Filters stay open on a wide screen; on a phone they fold until asked for.
  if (window.matchMedia('(min-width: 701px)').matches) for (const box of document.querySelectorAll('details[data-filters]')) box.open = true;

  // Copy buttons: data-copy names the input whose value is copied.
  document.addEventListener('click', (event) => {
    const button = event.target instanceof Element ? event.target.closest('[data-copy]') : null;
    if (!button) return;
    const input = document.getElementById(button.getAttribute('data-copy') ?? '');
    if (!input) return;
    input.select();
    const done = () => {
      button.textContent = 'Copied';
      setTimeout(() => (button.textContent = 'Copy'), 1500);
    };
    if (navigator.clipboard) navigator.clipboard.writeText(input.value).then(done, () => document.execCommand('copy') && done());
    else if (document.execCommand('copy')) done();
  });

  // Buttons with data-confirm ask once more before their form is sent.
  document.addEventListener('submit', (event) => {
    const submitter = event.submitter;
    const message = submitter?.getAttribute('data-confirm');
    if (message && !window.confirm(message)) event.preventDefault();
  });

  function fragment(markup) {
    const template = document.createElement('template');
    template.innerHTML = markup; // server-rendered, escaped by the template layer
    return template.content;
  }

  // Jobs list: rows update, new jobs appear at the top.
  const table = document.querySelector('table[data-live-jobs]');
  if (table) {
    const body = table.tBodies[0];
    const ids = [...body.querySelectorAll('tr[data-job]')].map((row) => row.getAttribute('data-job'));
    const params = new URLSearchParams(location.search);
    params.delete('offset');
    params.set('ids', ids.join(','));
    // The feed position the page was read at: the stream replays every change since then.
    params.set('after', table.getAttribute('data-feed-after') ?? '');
    const status = document.querySelector('[data-live-status]');
    const source = new EventSource(`${UI}/live/jobs?${params}`);
    const put = (data, prepend) => {
      const row = fragment(data.html).firstElementChild;
      if (!row) return;
      const old = document.getElementById(`row-${data.id}`);
      if (old) old.replaceWith(row);
      else if (prepend) {
        body.querySelector('tr.empty')?.remove();
        body.prepend(row);
      } else return;
      row.classList.add('flash');
      refreshTimes(row);
    };
    source.addEventListener('row', (e) => put(JSON.parse(e.data), false));
    source.addEventListener('new', (e) => put(JSON.parse(e.data), true));
    source.addEventListener('open', () => status && (status.textContent = 'Live: rows update as jobs change.'));
    source.addEventListener('error', () => status && (status.textContent = 'Live updates paused; reconnecting…'));
  }

  // The grid's legend: how many hosts are in each status, recounted from the cells.
  function recountLegend() {
    const legend = document.querySelector('[data-legend]');
    if (!legend) return;
    const counts = new Map();
    for (const cell of document.querySelectorAll('td[data-host]')) {
      const status = cell.getAttribute('data-status') ?? '';
      counts.set(status, (counts.get(status) ?? 0) + 1);
    }
    const tones = { ok: 'ok', running: 'run', pending: 'wait', failed: 'bad', timed_out: 'bad', unreachable: 'bad' };
    legend.replaceChildren();
    for (const [status, n] of counts) {
      const badge = document.createElement('span');
      badge.className = `state tone-${tones[status] ?? 'off'}`;
      badge.textContent = status.replace(/_/g, ' ');
      legend.append(badge, document.createTextNode(` ${n} `));
    }
  }

  // One job: live log, grid cells and timeline; reload once it has ended to show the result.
  const jobSection = document.querySelector('[data-job-page]');
  if (jobSection && jobSection.getAttribute('data-final') === 'no') {
    const id = jobSection.getAttribute('data-job-page');
    const after = jobSection.getAttribute('data-after') ?? '0';
    const log = document.querySelector('[data-live-log] code');
    const timeline = document.querySelector('[data-timeline]');
    const source = new EventSource(`${UI}/jobs/${id}/live?after=${encodeURIComponent(after)}`);
    const partial = new Map();
    source.addEventListener('job', (e) => {
      const data = JSON.parse(e.data);
      if (data.output && log) {
        // Chunks can end mid-line: show a host's line once it is whole, so lines never splice.
        const prefix = `${data.host ?? ''}${data.stream === 'stderr' ? ' (stderr)' : ''}: `;
        const parts = ((partial.get(prefix) ?? '') + data.output).split('\n');
        partial.set(prefix, parts.pop() ?? '');
        if (parts.length > 0) {
          log.append(document.createTextNode(parts.map((l) => prefix + l).join('\n') + '\n'));
          log.parentElement.scrollTop = log.parentElement.scrollHeight;
        }
      }
      if ((data.type === 'host_started' || data.type === 'host_finished') && data.host) {
        const cell = document.querySelector(`td[data-host="${CSS.escape(data.host)}"]`);
        if (cell) {
          const status = data.type === 'host_started' ? 'running' : data.status;
          const tone = { ok: 'ok', running: 'run', failed: 'bad', timed_out: 'bad', unreachable: 'bad' }[status] ?? 'off';
          cell.className = `cell tone-${tone}`;
          cell.setAttribute('data-status', status);
          cell.textContent = String(status).replace(/_/g, ' ');
          recountLegend();
        }
      }
      if (data.timeline && timeline) {
        timeline.querySelector('li.muted')?.remove();
        const li = document.createElement('li');
        const time = document.createElement('time');
        time.setAttribute('datetime', data.at);
        time.title = data.at.replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
        time.textContent = data.at.slice(11, 19);
        li.append(time, document.createTextNode(` ${data.timeline}`));
        timeline.append(li);
      }
    });
    source.addEventListener('summary', (e) => {
      const data = JSON.parse(e.data);
      const badge = fragment(data.badge).firstElementChild;
      const old = document.querySelector('h1 .state');
      if (badge && old) old.replaceWith(badge);
      const block = document.querySelector('[data-summary-block]');
      if (block) block.replaceChildren(fragment(data.html));
    });
    source.addEventListener('final', () => {
      source.close();
      setTimeout(() => location.reload(), 300);
    });
  }

  // Approval countdowns.
  const countdowns = document.querySelectorAll('[data-countdown]');
  if (countdowns.length > 0) {
    setInterval(() => {
      for (const el of countdowns) {
        const left = Date.parse(el.getAttribute('data-countdown') ?? '') - Date.now();
        if (Number.isNaN(left)) continue;
        const min = Math.floor(Math.max(left, 0) / 60000);
        const sec = Math.floor((Math.max(left, 0) % 60000) / 1000);
        el.textContent = left <= 0 ? 'now (expired)' : `in ${min} min ${String(sec).padStart(2, '0')} s`;
      }
    }, 1000);
  }

  // Run form: live target resolution and in-page plan preview.
  const form = document.querySelector('form[data-run-form]');
  if (form) {
    const tool = form.getAttribute('data-run-form');
    const targets = form.querySelector('[data-resolve-targets]');
    const resolved = form.querySelector('[data-resolved]');
    let timer;
    const resolve = async () => {
      if (!targets || !resolved) return;
      const expr = targets.value.trim();
      if (expr === '') {
        resolved.textContent = '';
        return;
      }
      const response = await fetch(`${UI}/run/${tool}/targets?expr=${encodeURIComponent(expr)}`, { headers: { accept: 'application/json' } });
      const data = await response.json();
      resolved.textContent = data.error ? `✕ ${data.error}` : `→ ${data.count} host${data.count === 1 ? '' : 's'}: ${data.hosts.join(', ')}${data.count > data.hosts.length ? ' …' : ''}`;
      resolved.className = data.error ? 'resolved error' : 'resolved';
    };
    targets?.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => void resolve(), 250);
    });
    if (targets && targets.value) void resolve();
    const preview = document.querySelector('[data-preview]');
    form.addEventListener('submit', async (event) => {
      if (event.submitter?.value !== 'preview' || !preview) return;
      event.preventDefault();
      const body = new URLSearchParams(new FormData(form));
      body.set('_action', 'preview');
      const response = await fetch(form.action, { method: 'POST', body, headers: { 'x-requested-with': 'fetch', 'x-csrf-token': csrf } });
      const heading = preview.querySelector('h2');
      preview.replaceChildren(heading ?? '', fragment(await response.text()));
      preview.scrollIntoView({ behavior: 'smooth', block: 'start' });
    });
  }
})();
