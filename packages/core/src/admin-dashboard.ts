/**
 * The admin dashboard: one HTML page with its CSS and script inline, no build step and no
 * external asset. It reads the subject from its own query string (`?userId=u1&agentId=a1`),
 * fetches `./status` with the same parameters and draws one usage bar per resource, coloured
 * by status, with the numbers and the time to reset (counted from the server's time in the
 * `Quota-Now` header, so a wrong client clock does not matter). When the API answers 401 it asks for a bearer token,
 * kept in sessionStorage for the tab. It refreshes every 10 s while visible.
 */

const STYLE = `
:root { color-scheme: light; --within: #2f9e44; --approaching: #e6a700; --at: #e8590c;
  --exceeded: #e03131; --unknown: #868e96; --line: #dee2e6; --muted: #5c636a; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #212529; background: #f8f9fa; }
header { background: #fff; border-bottom: 1px solid var(--line); padding: 16px 24px; }
h1 { font-size: 20px; margin: 0 0 12px; }
form { display: flex; flex-wrap: wrap; gap: 8px; align-items: end; }
label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); }
input { font: inherit; padding: 5px 8px; border: 1px solid #ced4da; border-radius: 4px; width: 150px; }
button { font: inherit; padding: 6px 14px; border: 0; border-radius: 4px; background: #1c7ed6;
  color: #fff; cursor: pointer; }
#token-row[hidden] { display: none; }
main { max-width: 880px; margin: 0 auto; padding: 20px 24px; }
#message { color: var(--muted); margin: 0 0 12px; }
#message.error { color: var(--exceeded); }
#quotas { list-style: none; padding: 0; margin: 0; display: grid; gap: 12px; }
.quota { background: #fff; border: 1px solid var(--line); border-left: 6px solid var(--tone);
  border-radius: 6px; padding: 12px 16px; }
.head { display: flex; justify-content: space-between; align-items: baseline; gap: 12px; }
.name { font-weight: 600; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
.badge { font-size: 12px; font-weight: 600; color: #fff; background: var(--tone);
  border-radius: 10px; padding: 1px 9px; white-space: nowrap; }
.bar { height: 14px; background: #e9ecef; border-radius: 7px; overflow: hidden; margin: 8px 0 6px; }
.fill { height: 100%; width: 0; background: var(--tone); transition: width .3s; }
.numbers, .rules { font-size: 13px; color: var(--muted); }
.numbers strong { color: #212529; }
.rules { margin: 6px 0 0; padding-left: 18px; }
.within_limit { --tone: var(--within); } .approaching_limit { --tone: var(--approaching); }
.at_limit { --tone: var(--at); } .exceeded { --tone: var(--exceeded); } .unknown { --tone: var(--unknown); }
`;

const SCRIPT = `
(function () {
  'use strict';
  var FIELDS = ['userId', 'agentId', 'tenantId', 'runId'];
  var LABELS = { within_limit: 'within limit', approaching_limit: 'approaching limit',
    at_limit: 'at limit', exceeded: 'exceeded', unknown: 'unknown' };
  var PERIODS = { per_request: 'per request', per_minute: 'per minute', per_hour: 'per hour',
    per_day: 'per day', per_week: 'per week', per_month: 'per month', total: 'in total' };
  var form = document.getElementById('subject');
  var list = document.getElementById('quotas');
  var message = document.getElementById('message');
  var tokenRow = document.getElementById('token-row');
  var numberFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });
  var token = sessionStorage.getItem('quotakit-admin-token') || '';
  var query = new URLSearchParams(location.search);
  FIELDS.forEach(function (field) { form.elements[field].value = query.get(field) || ''; });

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function amount(value) { return value === null ? '?' : numberFormat.format(value); }
  function duration(ms) {
    var s = Math.max(0, Math.ceil(ms / 1000));
    if (s < 60) return s + ' s';
    var m = Math.floor(s / 60);
    if (m < 60) return m + ' min' + (s % 60 ? ' ' + (s % 60) + ' s' : '');
    var h = Math.floor(m / 60);
    if (h < 48) return h + ' h' + (m % 60 ? ' ' + (m % 60) + ' min' : '');
    return Math.floor(h / 24) + ' d' + (h % 24 ? ' ' + (h % 24) + ' h' : '');
  }
  function resetText(resetAt, now) {
    return resetAt === null ? 'never resets' : 'resets in ' + duration(Date.parse(resetAt) - now);
  }
  function say(text, isError) {
    message.textContent = text;
    message.className = isError ? 'error' : '';
  }

  function render(data, now) {
    var names = Object.keys(data.quotas).sort();
    list.textContent = '';
    var ids = FIELDS.filter(function (f) { return data.subject[f] !== undefined; })
      .map(function (f) { return f + ' ' + data.subject[f]; });
    say(names.length + (names.length === 1 ? ' resource' : ' resources') + ' for ' +
      (ids.length ? ids.join(', ') : 'everyone (global rules only)'));
    names.forEach(function (name) {
      var q = data.quotas[name];
      var item = el('li', 'quota ' + q.status);
      item.dataset.resource = name;
      item.dataset.status = q.status;
      var head = el('div', 'head');
      head.appendChild(el('span', 'name', name));
      head.appendChild(el('span', 'badge', LABELS[q.status] || q.status));
      item.appendChild(head);
      var bar = el('div', 'bar');
      bar.setAttribute('role', 'progressbar');
      bar.setAttribute('aria-label', name + ' usage');
      bar.setAttribute('aria-valuemin', '0');
      if (q.limit !== null) bar.setAttribute('aria-valuemax', String(q.limit));
      if (q.used !== null) bar.setAttribute('aria-valuenow', String(q.used));
      var fill = el('div', 'fill');
      var ratio = q.used === null || q.limit === null ? 0 : q.limit === 0 ? 1 : q.used / q.limit;
      fill.style.width = Math.min(100, Math.max(0, ratio * 100)).toFixed(1) + '%';
      bar.appendChild(fill);
      item.appendChild(bar);
      var numbers = el('div', 'numbers');
      numbers.appendChild(el('strong', 'used', amount(q.used)));
      numbers.appendChild(document.createTextNode(' / '));
      numbers.appendChild(el('strong', 'limit', q.limit === null ? 'unlimited' : amount(q.limit)));
      numbers.appendChild(document.createTextNode(' used · '));
      numbers.appendChild(el('span', 'remaining', amount(q.remaining) + ' left'));
      numbers.appendChild(document.createTextNode(' · ' + (PERIODS[q.period] || '') + ' · '));
      numbers.appendChild(el('span', 'reset', resetText(q.resetAt, now)));
      item.appendChild(numbers);
      if (q.rules.length > 1) {
        var rules = el('ul', 'rules');
        q.rules.forEach(function (rule) {
          rules.appendChild(el('li', 'rule ' + rule.status, rule.name + ': ' + amount(rule.used) +
            ' / ' + amount(rule.limit) + ' · ' + (LABELS[rule.status] || rule.status) + ' · ' +
            resetText(rule.resetAt, now) + (rule.mode === 'shadow' ? ' · shadow' : '')));
        });
        item.appendChild(rules);
      }
      list.appendChild(item);
    });
  }

  // The status route beside this page, also when the page was reached as '/dashboard/' or
  // '/Dashboard//' (Express routes ignore case and a trailing slash by default), where a
  // relative 'status' would be '/dashboard/status'. (A RegExp from a string: this script sits
  // in a template literal, where backslashes would be taken as escapes.)
  var DASHBOARD_END = new RegExp('/dashboard/+$', 'i');
  var STATUS_PATH = DASHBOARD_END.test(location.pathname)
    ? location.pathname.replace(DASHBOARD_END, '/status')
    : 'status';

  function load() {
    var params = new URLSearchParams();
    FIELDS.forEach(function (field) {
      var value = form.elements[field].value.trim();
      if (value) params.set(field, value);
    });
    history.replaceState(null, '', '?' + params.toString());
    var headers = token ? { Authorization: 'Bearer ' + token } : {};
    return fetch(STATUS_PATH + '?' + params.toString(), { headers: headers, cache: 'no-store' })
      .then(function (response) {
        return response.json().then(function (body) {
          if (response.status === 401 || response.status === 403) {
            tokenRow.hidden = false;
            list.textContent = '';
            say(body.message || 'Not authorized: enter an admin token', true);
            return;
          }
          if (!response.ok) throw new Error(body.message || 'HTTP ' + response.status);
          var serverNow = Date.parse(response.headers.get('Quota-Now') || '');
          render(body, isNaN(serverNow) ? Date.now() : serverNow);
          document.body.dataset.loaded = 'true';
        });
      })
      .catch(function (error) { say('Could not load the status: ' + error.message, true); });
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    var typed = form.elements.token.value;
    if (typed) {
      token = typed;
      sessionStorage.setItem('quotakit-admin-token', token);
    }
    load();
  });
  setInterval(function () { if (!document.hidden) load(); }, 10000);
  load();
})();
`;

/** The dashboard page, served by `GET /dashboard` of the admin API. */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>QuotaKit usage</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>QuotaKit usage</h1>
<form id="subject">
<label>userId <input name="userId" autocomplete="off"></label>
<label>agentId <input name="agentId" autocomplete="off"></label>
<label>tenantId <input name="tenantId" autocomplete="off"></label>
<label>runId <input name="runId" autocomplete="off"></label>
<label id="token-row" hidden>admin token <input name="token" type="password" autocomplete="off"></label>
<button type="submit">Show</button>
</form>
</header>
<main>
<p id="message" role="status">Loading…</p>
<ul id="quotas"></ul>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;

let policy: Promise<string> | undefined;

/**
 * The page's Content-Security-Policy: nothing but its own inline style and script (allowed by
 * their SHA-256 hashes, CSP Level 2) and requests to its own origin.
 */
export function dashboardContentSecurityPolicy(): Promise<string> {
  policy ??= Promise.all([sha256(STYLE), sha256(SCRIPT)]).then(
    ([style, script]) =>
      `default-src 'none'; style-src '${style}'; script-src '${script}'; connect-src 'self'; ` +
      `base-uri 'none'; form-action 'self'; frame-ancestors 'none'`,
  );
  return policy;
}

async function sha256(text: string): Promise<string> {
  const digest = await globalThis.crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  let binary = '';
  for (const byte of new Uint8Array(digest)) binary += String.fromCharCode(byte);
  return `sha256-${btoa(binary)}`;
}
