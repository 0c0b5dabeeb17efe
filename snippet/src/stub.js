/*! loyjoy-collector stub | Apache-2.0 */
/*
 * The inline part of the recommended install: about a kilobyte that boots LoyJoy the moment its loader has run,
 * whatever happens to the collector. Called as (window, document, scriptUrl, options), options as for
 * LoyJoyCollector.boot (`loyjoy` holds LoyJoy's own boot options).
 * - Boots LoyJoy once window.LoyJoy exists, however late: a setter catches the loader's assignment, any script's
 *   load event what a setter cannot see (a global function declaration). It never gives up and polls nothing.
 * - Makes LoyJoy's classic GTM dataLayer push itself, so GTM triggers fire even if the collector never answers.
 * - Keeps events in memory only (nothing is sent or stored before the script has read the consent settings);
 *   the collector's script takes them over and sets `stub.l`, its own listener, for the rest.
 * - Loads the collector's script after the page's load event (a slow collector never delays the site), and
 *   again with backoff while it fails to arrive or to run (down, 5xx, a broken deploy), under the stub's nonce.
 * ES5, no eval: a CSP nonce on this tag is all it needs.
 */
(function (w, d, u, o) {
  var s = (w.LoyJoyCollector = w.LoyJoyCollector || {});
  if (s.boot) return s.boot(o); // the script came first: it boots
  if (s.stub) return;
  var q = [];
  var b = o.loyjoy || {};
  var e = b.eventListeners;
  var x = {};
  var c = d.currentScript;
  var n = c && c.nonce;
  var a = 0;
  var k;
  var t = (s.stub = { o: o, q: q, l: 0, b: 0 });
  function l(v, j) {
    var y = w[o.dataLayerName || 'dataLayer'];
    try {
      if (o.dataLayer !== false && y) y.push({ event: 'loyjoy', gaEventCategory: 'loyjoy', gaEventAction: j && j.process_name, gaEventLabel: v });
    } catch (r) {}
    if (t.l) t.l(v, j);
    else if (q.length < 500) q.push([v, j, +new Date()]);
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
  g();
  if (d.readyState == 'complete') p();
  else w.addEventListener('load', p);
})(window, document, 'https://COLLECTOR_URL/loyjoy-collector.js', { loyjoy: { bot: 'YOUR_BOT_ID' } });
