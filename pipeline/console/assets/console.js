// Sluice console: live tables. Every table with data-live="<topic>" (and optionally
// data-filter="field=value") receives the topic's new records from /live as
// Server-Sent Events. Values are written with textContent, never as HTML.
(function () {
  'use strict';
  var MAX_ROWS = 200;
  function cell(tr, text, code) {
    var td = document.createElement('td');
    if (code) {
      var c = document.createElement('code');
      c.textContent = text;
      td.appendChild(c);
    } else {
      td.textContent = text;
    }
    tr.appendChild(td);
  }
  function start(table) {
    var topic = table.getAttribute('data-live');
    var filter = table.getAttribute('data-filter') || '';
    var status = document.querySelector('.live-status[data-for="' + CSS.escape(topic) + '"]');
    var url = '/live?topic=' + encodeURIComponent(topic);
    if (filter) url += '&filter=' + encodeURIComponent(filter);
    var es = new EventSource(url);
    var n = 0;
    function say(s) { if (status) status.textContent = s; }
    es.onopen = function () { say('live'); table.setAttribute('data-connected', 'true'); };
    es.onerror = function () { say('disconnected, retrying…'); table.setAttribute('data-connected', 'false'); };
    es.addEventListener('end', function (e) { say('ended: ' + e.data); es.close(); });
    es.onmessage = function (e) {
      var m = JSON.parse(e.data);
      var tr = document.createElement('tr');
      tr.className = 'new';
      cell(tr, m.timestamp.replace('T', ' '));
      cell(tr, m.partition + '@' + m.offset);
      cell(tr, m.key);
      cell(tr, m.error ? ('undecodable: ' + m.error) : JSON.stringify(m.value), true);
      var body = table.tBodies[0];
      body.insertBefore(tr, body.firstChild);
      while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
      n++;
      table.setAttribute('data-received', String(n));
      say('live · ' + n + ' new');
    };
  }
  document.addEventListener('DOMContentLoaded', function () {
    document.querySelectorAll('table[data-live]').forEach(start);
  });
})();
