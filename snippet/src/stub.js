/*! loyjoy-collector stub | Apache-2.0 */
/*
 * The inline part of the recommended install without Google Tag Manager: about a kilobyte and a half that boots
 * LoyJoy the moment its loader has run, whatever happens to the collector. Called as (window, document,
 * scriptUrl, options), options as for LoyJoyCollector.boot (`loyjoy` holds LoyJoy's own boot options).
 * It is one producer of the queue contract of docs/install.md ("The queue contract"); the GTM tag is the other.
 * - Boots LoyJoy once window.LoyJoy exists, however late: a setter catches the loader's assignment, any script's
 *   load event what a setter cannot see (a global function declaration). It never gives up and polls nothing.
 * - Makes LoyJoy's classic GTM dataLayer push itself, so GTM triggers fire even if the collector never answers.
 * - Keeps events in memory only, in `LoyJoyCollector.stub.q` (at most 500; `stub.d` counts the rest): nothing
 *   is sent or stored before the script has read the consent settings. The script takes the queue over and
 *   replaces its `push`.
 * - Left before the script arrived, with storage allowed (no consent option, or a consent already granted), it
 *   counts what it held in localStorage `ljc:lost`, which the script reports from a later page.
 * - Loads the collector's script after the page's load event (a slow collector never delays the site), and
 *   again with backoff while it fails to arrive or to run (down, 5xx, a broken deploy), under the stub's nonce.
 * ES5, no eval: a CSP nonce on this tag is all it needs.
 */
(function (w, d, u, o) {
  var s = (w.LoyJoyCollector = w.LoyJoyCollector || {});
  if (s.boot) return s.boot(o); // the script came first: it boots
  if (s.stub) return; // the GTM tag (or another stub) came first: it boots
  var q = [];
  var b = o.loyjoy || {};
  var e = b.eventListeners;
  var x = {};
  var c = d.currentScript;
  var n = c && c.nonce;
  var a = 0;
  var m = 0; // what this page counted as lost when it was hidden: taken back if it comes back (bfcache)
  var k;
  var t = (s.stub = { o: o, q: q, d: 0 });
  function l(v, j) {
    var y = w[o.dataLayerName || 'dataLayer'];
    try {
      if (o.dataLayer !== false && y) y.push({ event: 'loyjoy', gaEventCategory: 'loyjoy', gaEventAction: j && j.process_name, gaEventLabel: v });
    } catch (r) {}
    if (q.length < 500) q.push([v, j, +new Date()]);
    else t.d++;
  }
  function g() {
    if (!t.b && typeof w.LoyJoy == 'function') {
      t.b = 1;
      d.removeEventListener('load', g, !0);
      w.LoyJoy('boot', x);
    }
  }
  function p() {
    var i = d.createElement('script');
    i.async = !0;
    i.src = u + (a ? (/\?/.test(u) ? '&' : '?') + 'r=' + a : '');
    if (n) i.nonce = n;
    i.onload = i.onerror = function () {
      if (w.LoyJoyCollector.version) return;
      d.head.removeChild(i); // a failed try leaves nothing behind
      setTimeout(p, Math.min(3e4, 500 << ++a));
    };
    d.head.appendChild(i);
  }
  /** Storage allowed: no consent needed, or granted now (Consent Mode's last analytics_storage, or the function). */
  function z() {
    var f = o.consent;
    var y = w[o.dataLayerName || 'dataLayer'] || [];
    var r;
    if (f == null) return 1;
    if (typeof f == 'function') return f() === !0;
    for (var i = 0; f == 'consent-mode' && i < y.length; i++) {
      if (y[i] && y[i][0] == 'consent' && y[i][2] && y[i][2].analytics_storage) r = y[i][2].analytics_storage == 'granted';
    }
    return r;
  }
  /** Add `by` (or take it back) to the lost record: {quota: held, overflow: past the bound}. */
  function h(by) {
    try {
      var f = w.localStorage;
      var r = JSON.parse(f.getItem('ljc:lost')) || {};
      r.quota = Math.max(0, (r.quota || 0) + by * q.length);
      r.overflow = Math.max(0, (r.overflow || 0) + by * t.d);
      if (r.quota || r.overflow) f.setItem('ljc:lost', JSON.stringify(r));
      else f.removeItem('ljc:lost');
    } catch (r) {}
  }
  for (k in b) x[k] = b[k];
  x.eventListeners = !e
    ? [l]
    : e.concat
      ? e.concat([l])
      : [
          function (v, j) {
            for (var f = e[v] || [], i = 0; i < f.length; i++) {
              try {
                f[i](j);
              } catch (r) {}
            }
            l(v, j);
          }
        ];
  if (!('LoyJoy' in w)) {
    try {
      Object.defineProperty(w, 'LoyJoy', {
        configurable: !0,
        get: function () {},
        set: function (v) {
          Object.defineProperty(w, 'LoyJoy', { value: v, writable: !0, configurable: !0, enumerable: !0 });
          setTimeout(g, 0);
        }
      });
    } catch (r) {}
  }
  d.addEventListener('load', g, !0);
  w.addEventListener('pagehide', function () {
    if (!w.LoyJoyCollector.version && (q.length || t.d) && z()) h((m = 1));
  });
  w.addEventListener('pageshow', function () {
    if (m) h(-1);
    m = 0;
  });
  g();
  if (d.readyState == 'complete') p();
  else w.addEventListener('load', p);
})(window, document, 'https://COLLECTOR_URL/loyjoy-collector.js', { loyjoy: { bot: 'YOUR_BOT_ID' } });
