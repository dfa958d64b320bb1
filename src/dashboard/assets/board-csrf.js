// Loaded into bull-board's page (/ui/queues) by the dashboard: bull-board's own UI knows
// nothing of Castellan's CSRF token, so its writes (retry, clean, pause, …) get the session's
// synchronizer token here, as a header on every same-origin request that changes something.
// The server refuses board writes without it, like every other dashboard form.
'use strict';
(() => {
  const token = document.querySelector('meta[name="csrf-token"]')?.getAttribute('content') ?? '';
  const safe = new Set(['GET', 'HEAD', 'OPTIONS']);
  const ours = (url) => {
    try {
      return new URL(url, document.baseURI).origin === location.origin;
    } catch {
      return false;
    }
  };
  const open = XMLHttpRequest.prototype.open;
  XMLHttpRequest.prototype.open = function (method, url, ...rest) {
    this.castellanNeedsToken = !safe.has(String(method).toUpperCase()) && ours(url);
    return open.call(this, method, url, ...rest);
  };
  const send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function (...args) {
    if (this.castellanNeedsToken) this.setRequestHeader('x-csrf-token', token);
    return send.apply(this, args);
  };
  const fetch = window.fetch;
  window.fetch = (input, init = {}) => {
    const method = String(init.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
    const url = input instanceof Request ? input.url : String(input);
    if (safe.has(method) || !ours(url)) return fetch(input, init);
    const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
    headers.set('x-csrf-token', token);
    return fetch(input, { ...init, headers });
  };
})();
