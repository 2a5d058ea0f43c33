// flow serve: the live parts of the page. Plain ES2017, no dependencies, no build.
// The HTML is rendered by the server (crates/flow-serve/src/page.rs); this script
// keeps it current: the runs list polls, a run's page follows the run's events.
'use strict';

(function () {
  document.documentElement.classList.add('js');

  // The graph's colours (as crates/flow-view/src/graph.rs draws them): [fill, text].
  var COLOURS = {
    succeeded: ['#2e9e55', '#ffffff'],
    failed: ['#d64541', '#ffffff'],
    cancelled: ['#9aa0a6', '#202124'],
    upstream_failed: ['#f0a030', '#202124'],
    skipped: ['#dadce0', '#202124'],
    running: ['#1a73e8', '#ffffff'],
    pending: ['#f1f3f4', '#202124']
  };
  var COUNT_ORDER = ['succeeded', 'failed', 'upstream_failed', 'cancelled', 'skipped', 'running', 'pending'];
  var MAX_OUTPUT_BYTES = 20 * 1024;
  var MAX_ITEMS = 500;

  function esc(value) {
    return String(value == null ? '' : value)
      .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;').replace(/'/g, '&#39;');
  }

  function fmtMs(ms) {
    if (typeof ms !== 'number' || !isFinite(ms)) return '—';
    return ms >= 10000 ? (ms / 1000).toFixed(1) + ' s' : ms.toFixed(1) + ' ms';
  }

  function shortTime(text) {
    text = String(text || '');
    return /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/.test(text) ? text.slice(0, 10) + ' ' + text.slice(11, 19) : text;
  }

  function truncate(text, max) {
    text = String(text || '');
    return text.length <= max ? text : text.slice(0, max - 1) + '…';
  }

  function plural(n, one, many) {
    return n + ' ' + (n === 1 ? one : many);
  }

  function badge(status) {
    return '<span class="badge" data-status="' + esc(status) + '">' + esc(String(status).replace(/_/g, ' ')) + '</span>';
  }

  function byData(root, attr, value) {
    var q = window.CSS && CSS.escape ? CSS.escape(value) : String(value).replace(/["\\]/g, '\\$&');
    return root.querySelector('[' + attr + '="' + q + '"]');
  }

  // fetch, as JSON, with the error of a problem (RFC 9457) in words.
  function api(method, url, body) {
    var options = { method: method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
    if (body !== undefined) {
      options.headers['Content-Type'] = 'application/json';
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (response) {
      if (response.status === 401) {
        location.href = '/login';
      }
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        var error = null;
        if (!response.ok) {
          error = data && (data.title || data.detail)
            ? [data.title, data.detail].filter(Boolean).join(': ')
            : response.status + ' ' + (response.statusText || 'error');
        }
        return { ok: response.ok, status: response.status, data: data, error: error };
      });
    }, function (e) {
      return { ok: false, status: 0, data: null, error: 'The server cannot be reached (' + e.message + ')' };
    });
  }

  function say(el, text, kind) {
    if (!el) return;
    el.textContent = text || '';
    el.hidden = !text;
    el.dataset.kind = kind || 'error';
  }

  // ---- runs: the table polls every 2 s ----------------------------------------

  function countsHtml(counts) {
    if (!counts || typeof counts !== 'object') return '';
    var keys = Object.keys(counts).sort(function (a, b) {
      var i = COUNT_ORDER.indexOf(a), j = COUNT_ORDER.indexOf(b);
      return (i < 0 ? 99 : i) - (j < 0 ? 99 : j);
    });
    return keys.filter(function (k) { return counts[k] > 0; }).map(function (k) {
      var word = k.replace(/_/g, ' ');
      return '<span class="count" data-status="' + esc(k) + '" title="' + esc(word) + '">' + esc(counts[k]) + ' ' + esc(word) + '</span>';
    }).join('');
  }

  function runRow(run) {
    var id = run.run_id || '';
    return '<tr data-run="' + esc(id) + '" data-status="' + esc(run.status) + '">' +
      '<td><a href="/runs/' + encodeURIComponent(id) + '"><code>' + esc(id) + '</code></a></td>' +
      '<td>' + esc(run.workflow) + '</td>' +
      '<td>' + badge(run.status || '') + '</td>' +
      '<td><time datetime="' + esc(run.started_at) + '">' + esc(shortTime(run.started_at)) + '</time></td>' +
      '<td class="num">' + esc(fmtMs(run.duration_ms)) + '</td>' +
      '<td class="counts">' + countsHtml(run.nodes) + '</td></tr>';
  }

  function initRuns() {
    var form = document.getElementById('filter');
    var tbody = document.querySelector('#runs tbody');
    if (!form || !tbody) return;
    var last = null;

    function query() {
      var params = new URLSearchParams();
      ['workflow', 'status'].forEach(function (name) {
        var value = form.elements[name] && form.elements[name].value;
        if (value) params.set(name, value);
      });
      var top = form.elements.top_level;
      if (top && top.checked) params.set('top_level', 'true');
      return params;
    }

    function refresh() {
      if (document.hidden) return Promise.resolve();
      var params = query();
      params.set('limit', '50');
      return api('GET', '/api/v1/runs?' + params.toString()).then(function (r) {
        if (!r.ok || !r.data) return;
        var runs = r.data.runs || [];
        var filtered = params.has('workflow') || params.has('status');
        var html = runs.length
          ? runs.map(runRow).join('\n')
          : '<tr class="empty"><td colspan="6">' +
            (filtered ? 'No runs match these filters.' : 'No runs yet: start one from the workflows page.') + '</td></tr>';
        if (html !== last) {
          last = html;
          tbody.innerHTML = html;
        }
      });
    }

    function loop() {
      refresh().then(function () { setTimeout(loop, 2000); }, function () { setTimeout(loop, 2000); });
    }

    form.addEventListener('change', function () {
      var params = query().toString();
      history.replaceState(null, '', '/' + (params ? '?' + params : ''));
      refresh();
    });
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      form.dispatchEvent(new Event('change'));
    });
    tbody.addEventListener('click', function (e) {
      if (e.target.closest('a')) return;
      var row = e.target.closest('tr[data-run]');
      if (row) location.href = '/runs/' + encodeURIComponent(row.dataset.run);
    });
    document.addEventListener('visibilitychange', function () { if (!document.hidden) refresh(); });
    setTimeout(loop, 2000);
  }

  // ---- a run: live while it goes on -----------------------------------------------

  var EVENT_KINDS = ['run_started', 'node_started', 'attempt_failed', 'node_settled', 'items_listed',
    'item_settled', 'notice', 'node_waiting', 'signal_received', 'run_waiting', 'run_woken',
    'run_cancelled', 'run_resumed', 'message'];

  function nodeDuration(node) {
    if (node.started_ms != null && node.finished_ms != null) return fmtMs(Math.max(0, node.finished_ms - node.started_ms));
    if (node.started_ms != null) return 'running';
    return '—';
  }

  function itemCounts(node) {
    if (node.items) return node.items;
    if (!node.item_runs) return null;
    var c = { total: node.item_runs.length, succeeded: 0, failed: 0, cancelled: 0 };
    node.item_runs.forEach(function (item) { if (item.status in c) c[item.status] += 1; });
    return c;
  }

  function attemptsHtml(node) {
    var c = itemCounts(node);
    return esc(node.attempts || 0) + (c ? ' <small class="items">' + c.succeeded + '/' + c.total + ' items</small>' : '');
  }

  function detailBody(node, reportUrl) {
    var out = '';
    var json = ' <a href="' + esc(reportUrl) + '">the report (JSON)</a>';
    if (node.error != null) out += '<h3>Error</h3><pre class="error">' + esc(node.error) + '</pre>';
    out += '<h3>Output</h3>';
    if (node.output == null) {
      out += '<p class="muted">' + (node.status === 'pending' || node.status === 'running' ? 'No output yet.' : 'No output.') + '</p>';
    } else {
      var pretty = JSON.stringify(node.output, null, 2);
      var shown = pretty.length > MAX_OUTPUT_BYTES ? pretty.slice(0, MAX_OUTPUT_BYTES) : pretty;
      out += '<pre class="json">' + esc(shown) + '</pre>';
      if (shown.length < pretty.length) {
        out += '<p class="note">Output cut at ' + Math.ceil(shown.length / 1024) + ' KB of ' +
          Math.ceil(pretty.length / 1024) + ' KB: the whole of it is in' + json + '.</p>';
      }
    }
    var attempts = node.attempts_detail || [];
    var c = itemCounts(node);
    if (attempts.length || !c) out += '<h3>Attempts</h3>';
    if (!attempts.length) {
      if (!c) out += '<p class="muted">None.</p>';
    } else {
      out += '<div class="table-wrap"><table class="attempts"><thead><tr><th class="num">#</th><th class="num">Start</th>' +
        '<th class="num">End</th><th class="num">Took</th><th>Error</th></tr></thead><tbody>';
      attempts.forEach(function (a, i) {
        out += '<tr><td class="num">' + (i + 1) + '</td><td class="num">' + fmtMs(a.started_ms) + '</td><td class="num">' +
          fmtMs(a.finished_ms) + '</td><td class="num">' + fmtMs(Math.max(0, a.finished_ms - a.started_ms)) +
          '</td><td class="error">' + esc(a.error || '') + '</td></tr>';
      });
      out += '</tbody></table></div>';
    }
    if (node.limit_wait_ms != null) out += '<p class="muted">Waited ' + fmtMs(node.limit_wait_ms) + ' for its shared limit.</p>';
    if (c) {
      out += '<h3>Items</h3><p class="item-counts">' + plural(c.total, 'item', 'items') + ' · ' + c.succeeded +
        ' succeeded · ' + c.failed + ' failed · ' + c.cancelled + ' cancelled</p>';
      var items = node.item_runs || [];
      if (items.length) {
        out += '<div class="table-wrap"><table class="items"><thead><tr><th class="num">Index</th><th>Status</th>' +
          '<th class="num">Attempts</th><th class="num">Took</th><th>Error</th></tr></thead><tbody>';
        items.slice(0, MAX_ITEMS).forEach(function (item) {
          var took = item.started_ms != null && item.finished_ms != null ? fmtMs(Math.max(0, item.finished_ms - item.started_ms)) : '—';
          out += '<tr data-item="' + esc(item.index) + '" data-status="' + esc(item.status) + '"><td class="num">' + esc(item.index) +
            '</td><td>' + badge(item.status) + '</td><td class="num">' + esc(item.attempts) + '</td><td class="num">' + took +
            '</td><td class="error">' + esc(truncate(item.error, 500)) + '</td></tr>';
        });
        out += '</tbody></table></div>';
        if (items.length > MAX_ITEMS) {
          out += '<p class="note">Showing the first ' + MAX_ITEMS + ' of ' + items.length + ' items: all of them are in' + json + '.</p>';
        }
      }
    }
    return out;
  }

  function initRun() {
    var body = document.body;
    var runId = body.dataset.run;
    var base = '/api/v1/runs/' + encodeURIComponent(runId);
    var statusEl = document.getElementById('run-status');
    var durationEl = document.getElementById('run-duration');
    var cancel = document.getElementById('cancel');
    var retry = document.getElementById('retry');
    var message = document.getElementById('message');
    var graph = document.getElementById('graph');
    var nodesTable = document.getElementById('nodes');
    var timeline = document.getElementById('timeline');
    var source = null;
    var poller = null;
    var finishing = false;
    var inFlight = false;
    var again = false;
    var timer = null;
    var lastFetch = 0;
    var lastTimeline = '';
    var timelineAt = 0;
    var timelineTimer = null;
    var seen = {};

    function setButtons(status) {
      if (cancel) cancel.disabled = !(status === 'running' || status === 'waiting');
      if (retry) retry.disabled = !(status === 'failed' || status === 'cancelled');
    }

    function refreshTimeline(signature) {
      if (!timeline || signature === lastTimeline) return;
      var wait = Math.max(0, timelineAt + 1000 - Date.now());
      clearTimeout(timelineTimer);
      timelineTimer = setTimeout(function () {
        lastTimeline = signature;
        timelineAt = Date.now();
        timeline.src = base + '/timeline.svg?t=' + timelineAt;
      }, wait);
    }

    function apply(report) {
      if (!report || !report.nodes) return;
      var status = report.status;
      // A run that began or stopped waiting: the page shows what it waits for.
      if (String(status === 'waiting') !== (body.dataset.waiting || 'false')) {
        location.reload();
        return;
      }
      if (statusEl) {
        statusEl.dataset.status = status;
        statusEl.textContent = String(status).replace(/_/g, ' ');
      }
      if (durationEl) durationEl.textContent = fmtMs(report.duration_ms);
      document.title = report.workflow + ' ' + status + ' · flow';
      setButtons(status);
      var signature = [status];
      Object.keys(report.nodes).forEach(function (id) {
        var node = report.nodes[id];
        var s = node.status || 'pending';
        var c = itemCounts(node);
        var sig = [s, node.attempts, node.finished_ms, node.error, c ? c.succeeded + c.failed + c.cancelled : ''].join('|');
        signature.push(sig);
        if (seen[id] === sig) return;
        seen[id] = sig;
        var row = nodesTable && byData(nodesTable, 'data-node', id);
        if (row) {
          row.dataset.status = s;
          row.querySelector('.status').innerHTML = badge(s);
          row.querySelector('.attempts').innerHTML = attemptsHtml(node);
          row.querySelector('.duration').textContent = nodeDuration(node);
          var cell = row.querySelector('.error');
          cell.textContent = truncate(node.error, 160);
          cell.title = truncate(node.error, 2000);
        }
        var box = graph && byData(graph, 'data-node', id);
        if (box) {
          var colours = COLOURS[s] || COLOURS.pending;
          box.dataset.status = s;
          box.setAttribute('class', 'node status-' + s);
          var rect = box.querySelector('rect');
          if (rect) rect.setAttribute('fill', colours[0]);
          Array.prototype.forEach.call(box.querySelectorAll('text'), function (t) { t.setAttribute('fill', colours[1]); });
          var tip = box.querySelector('title');
          if (tip) tip.textContent = tip.textContent.replace(/: [a-z_]+$/, ': ' + s);
        }
        var details = byData(document, 'data-detail', id);
        if (details) {
          var summary = details.querySelector('summary');
          summary.querySelector('.badge').outerHTML = badge(s);
          summary.querySelector('.muted').textContent =
            plural(node.attempts || 0, 'attempt', 'attempts') + ' · ' + nodeDuration(node);
          details.querySelector('.detail-body').innerHTML = detailBody(node, base);
        }
      });
      refreshTimeline(signature.join(';'));
      if (status !== 'running') {
        if (message && message.dataset.kind === 'info') say(message, '');
        stopLive();
      } else if (finishing) {
        // The stream ended, yet the run goes on (it was resumed): poll instead.
        finishing = false;
        if (!poller && body.dataset.live === 'true') poller = setInterval(schedule, 1000);
      }
    }

    function refresh() {
      inFlight = true;
      lastFetch = Date.now();
      return api('GET', base).then(function (r) {
        if (r.ok) apply(r.data);
        else if (r.status !== 0) say(message, r.error);
      }).catch(function (e) {
        if (window.console) console.error(e);
      }).then(function () {
        inFlight = false;
        if (again) { again = false; schedule(); }
      });
    }

    // At most ~4 fetches a second, and one at a time; the last event is never lost.
    function schedule() {
      if (inFlight) { again = true; return; }
      if (timer) return;
      timer = setTimeout(function () { timer = null; refresh(); }, Math.max(0, lastFetch + 250 - Date.now()));
    }

    function stopLive() {
      body.dataset.live = 'false';
      if (source) { source.close(); source = null; }
      if (poller) { clearInterval(poller); poller = null; }
      finishing = false;
    }

    function startLive() {
      stopLive();
      body.dataset.live = 'true';
      if (window.EventSource) {
        source = new EventSource(base + '/events');
        EVENT_KINDS.forEach(function (kind) { source.addEventListener(kind, schedule); });
        source.addEventListener('run_finished', function () {
          finishing = true;
          if (source) { source.close(); source = null; }
          schedule();
        });
        source.onerror = function () {
          // The browser reconnects by itself; if it gave up, poll instead.
          if (source && source.readyState === EventSource.CLOSED) {
            source = null;
            if (!poller && body.dataset.live === 'true') poller = setInterval(schedule, 2000);
          }
        };
      } else {
        poller = setInterval(schedule, 2000);
      }
      schedule();
    }

    if (cancel) {
      cancel.addEventListener('click', function () {
        cancel.disabled = true;
        api('POST', base + '/cancel').then(function (r) {
          if (r.ok) {
            say(message, 'Cancelling…', 'info');
            schedule();
          } else {
            say(message, r.error);
            schedule();
          }
        });
      });
    }
    if (retry) {
      retry.addEventListener('click', function () {
        retry.disabled = true;
        api('POST', base + '/retry').then(function (r) {
          if (!r.ok) {
            say(message, r.error);
            schedule();
            return;
          }
          var data = r.data || {};
          if (data.run_id && data.run_id !== runId) {
            location.href = data.page || '/runs/' + encodeURIComponent(data.run_id);
            return;
          }
          say(message, 'Retrying the failed nodes…', 'info');
          setButtons('running');
          startLive();
        });
      });
    }

    // A click on a node of the graph opens its details.
    if (graph) {
      graph.addEventListener('click', function (e) {
        var box = e.target.closest('[data-node]');
        if (!box) return;
        var details = byData(document, 'data-detail', box.dataset.node);
        if (details) {
          details.open = true;
          details.scrollIntoView({ behavior: 'smooth', block: 'start' });
        }
      });
    }
    function openHash() {
      var target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
      if (target && target.tagName === 'DETAILS') target.open = true;
    }
    window.addEventListener('hashchange', openHash);
    openHash();

    // A waiting node's signal form: the payload as JSON, to the API.
    Array.prototype.forEach.call(document.querySelectorAll('form.signal'), function (form) {
      var error = form.querySelector('.form-error');
      var button = form.querySelector('button[type="submit"]');
      form.addEventListener('submit', function (e) {
        e.preventDefault();
        var text = form.elements.payload.value.trim();
        var payload = null;
        try {
          if (text) payload = JSON.parse(text);
        } catch (err) {
          error.textContent = 'The payload is not JSON: ' + err.message;
          form.elements.payload.focus();
          return;
        }
        error.textContent = '';
        button.disabled = true;
        api('POST', base + '/signals/' + encodeURIComponent(form.dataset.signal), payload).then(function (r) {
          if (r.ok) {
            say(message, 'Signal sent.', 'info');
            setTimeout(function () { location.reload(); }, 500);
          } else {
            button.disabled = false;
            error.textContent = r.error || 'The signal was not sent.';
          }
        });
      });
    });

    if (body.dataset.live === 'true') startLive();
  }

  // ---- workflows: start a run --------------------------------------------------------

  function initWorkflows() {
    Array.prototype.forEach.call(document.querySelectorAll('form.start'), function (form) {
      var error = form.querySelector('.form-error');
      var button = form.querySelector('button[type="submit"]');
      form.addEventListener('submit', function (e) {
        e.preventDefault();
        // Empty: no `input`, so the run takes the workflow file's own.
        var text = form.elements.input.value.trim();
        var body = {};
        try {
          if (text) body.input = JSON.parse(text);
        } catch (err) {
          error.textContent = 'The input is not JSON: ' + err.message;
          form.elements.input.focus();
          return;
        }
        error.textContent = '';
        button.disabled = true;
        var name = form.dataset.workflow;
        api('POST', '/api/v1/workflows/' + encodeURIComponent(name) + '/runs', body).then(function (r) {
          button.disabled = false;
          if (r.ok && r.data) {
            location.href = r.data.page || '/runs/' + encodeURIComponent(r.data.run_id);
          } else {
            error.textContent = r.error || 'The run did not start.';
          }
        });
      });
    });
  }

  var pages = { runs: initRuns, run: initRun, workflows: initWorkflows };
  var init = pages[document.body.dataset.page];
  if (init) init();
})();
