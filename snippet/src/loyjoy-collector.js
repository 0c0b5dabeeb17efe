/*! loyjoy-collector snippet v0.1.0 | Apache-2.0 */
/*
 * LoyJoy → BigQuery collector snippet. One global: window.LoyJoyCollector.
 * Boots LoyJoy with a listener that keeps the classic GTM dataLayer push and delivers every chat event to
 * the collector: a client-made event_id per event, small batches, a bounded localStorage queue that survives
 * reloads, keepalive fetch on page hide, retries with backoff (honouring Retry-After), one queue per tab.
 * An event leaves the queue only when the collector's answer confirms it: what a page could not confirm before
 * it went away (an ad blocker, a closed tab, a collector that was down) is sent again from the next page, with
 * the same event_id, so the copy never counts twice downstream. Each event carries its number for the client
 * (`seq`: a gap is a loss), and the next event the counts of what the snippet itself knowingly dropped
 * (`dropped`: queue overflow, a full storage, consent refused); events taken over from an earlier page say so
 * (`later_page`). The collector's `delivery_health` table reads them.
 * ES5 on purpose: GTM Custom HTML tags and old browsers run it as is. No eval, no dependencies.
 */
(function (window, document) {
  'use strict';

  if (window.LoyJoyCollector && window.LoyJoyCollector.version) return;

  var VERSION = '0.1.0';
  var PREFIX = 'ljc:';
  var SESSION_TIMEOUT_MS = 30 * 60 * 1000;
  var ORPHAN_AFTER_MS = 15 * 1000;
  var KEEPALIVE_BUDGET = 60000; // browsers allow 64 KiB of keepalive bodies in flight per page
  var canKeepalive = !!(window.Request && 'keepalive' in window.Request.prototype);
  var SECRET_KEY = /^((id|access|refresh)_?token|token|jwt|password|secret|(e_?)?mail|email_?address)$/i;
  var EMAIL = /[\w.%+\-]+@[a-z\d\-]+(\.[a-z\d\-]+)*\.[a-z]{2,}/gi;
  var JWT = /eyJ[\w\-]{5,}\.[\w\-]{5,}\.[\w\-]*/g;

  // Served by the collector itself (…/loyjoy-collector.js)? Then the collector is where the script came from.
  var script = document.currentScript;
  var served = script && /\/loyjoy-collector\.js(\?.*)?$/.test(script.src) ? script.src.replace(/[^/]*$/, '') : '';

  var config = {
    collector: served,
    batchSize: 20,
    flushInterval: 1000,
    maxQueue: 500,
    maxBackoff: 60000,
    dataLayer: true,
    dataLayerName: 'dataLayer'
    // also, unset by default: consent (not needed; or a function returning true/false/undefined (pending), or
    // 'consent-mode', or 'explicit': told by LoyJoyCollector.consent()), gaMeasurementId, onError
  };
  // Every piece of state the snippet keeps, declared here and nowhere else.
  var state = {
    tab: null, // this tab's id: its queue's localStorage key
    previousTab: null, // the same tab before a reload: its queue is ours at once
    keepaliveBytes: 0, // bodies of keepalive requests in flight
    timer: null,
    backoff: 0,
    retryAt: 0,
    consent: undefined, // true, false or undefined (pending)
    explicitConsent: undefined, // what LoyJoyCollector.consent() was told
    memoryIds: {}, // client and session ids before consent allows storage; per client id, its last seq
    dropped: {}, // what the snippet knowingly lost and has not reported yet: {overflow, quota, consent}
    last: null, // the bot and process of the last event that named them
    started: false,
    stub: null // the inline stub whose events this script took over
  };

  // ----------------------------------------------------------------------------------------- utilities

  function report(error) {
    try {
      if (typeof config.onError === 'function') config.onError(error);
    } catch (ignored) {}
  }

  function guard(fn) {
    return function () {
      try {
        return fn.apply(this, arguments);
      } catch (error) {
        report(error);
      }
    };
  }

  /** A version 4 UUID: randomUUID where the page is a secure context, else random hex digits in its mould. */
  function uuid() {
    var c = window.crypto;
    if (c && c.randomUUID) return c.randomUUID();
    return '10000000-1000-4000-8000-100000000000'.replace(/[018]/g, function (digit) {
      var random = c && c.getRandomValues ? c.getRandomValues(new Uint8Array(1))[0] : Math.random() * 256;
      return (digit ^ (random & (15 >> (digit / 4)))).toString(16); // 8: the variant's 8, 9, a or b
    });
  }

  function hasOwn(object, key) {
    return Object.prototype.hasOwnProperty.call(object, key);
  }

  /** A storage, or null where the browser blocks it. A full one is still read: writes fail one by one. */
  function storage(kind) {
    try {
      return window[kind];
    } catch (e) {
      return null;
    }
  }

  function read(store, key) {
    try {
      var value = store && store.getItem(PREFIX + key);
      return value ? JSON.parse(value) : null;
    } catch (e) {
      return null;
    }
  }

  /** True when stored (or removed). */
  function write(store, key, value) {
    try {
      if (!store) return;
      if (value === null) store.removeItem(PREFIX + key);
      else store.setItem(PREFIX + key, JSON.stringify(value));
      return true;
    } catch (e) {
      report(e); // quota: the in-memory queue still delivers
    }
  }

  // Storage only once consent allows it (ePrivacy treats localStorage like cookies).
  function persistent() {
    return state.consent === true ? storage('localStorage') : null;
  }

  /** Drop secrets and e-mail addresses: the browser never sends a JWT or a plaintext e-mail. */
  function scrub(value, depth) {
    if (typeof value === 'string') return value.replace(JWT, '[jwt]').replace(EMAIL, '[email]');
    if (!value || typeof value !== 'object' || depth > 12) return value;
    if (Array.isArray(value)) {
      var list = [];
      for (var i = 0; i < value.length; i++) list.push(scrub(value[i], depth + 1));
      return list;
    }
    var clean = {};
    for (var key in value) {
      if (!hasOwn(value, key) || SECRET_KEY.test(key)) continue;
      var item = value[key];
      if (typeof item === 'function' || item === undefined) continue;
      clean[key] = scrub(item, depth + 1);
    }
    return clean;
  }

  function cookie(name) {
    var parts = ('; ' + document.cookie).split('; ' + name + '=');
    return parts.length > 1 ? decodeURIComponent(parts.pop().split(';')[0]) : null;
  }

  /** GA4's client id from `_ga` (GA1.1.<random>.<timestamp>). */
  function gaClientId(value) {
    var parts = (value || '').split('.');
    return parts.length >= 4 ? parts.slice(-2).join('.') : null;
  }

  /** GA4's session id from `_ga_<ID>`: GS1.1.<sid>.<n>... or GS2.1.s<sid>$o<n>$... */
  function gaSessionId(value) {
    if (!value) return null;
    var gs2 = /^GS2\.\d\.s(\d+)/.exec(value);
    if (gs2) return gs2[1];
    var parts = value.split('.');
    return parts.length >= 3 && /^\d+$/.test(parts[2]) ? parts[2] : null;
  }

  function gaSessionCookie() {
    if (config.gaMeasurementId) return cookie('_ga_' + config.gaMeasurementId.replace(/^G-/, ''));
    var match = /(?:^|; )_ga_[A-Z0-9]+=([^;]*)/.exec(document.cookie);
    return match ? decodeURIComponent(match[1]) : null;
  }

  function utm(search) {
    var result = null;
    var names = 'source medium campaign term content'.split(' ');
    for (var i = 0; i < names.length; i++) {
      var match = new RegExp('[?&]utm_' + names[i] + '=([^&#]*)').exec(search);
      if (match) {
        result = result || {};
        try {
          result[names[i]] = decodeURIComponent(match[1].replace(/\+/g, ' '));
        } catch (e) {
          result[names[i]] = match[1];
        }
      }
    }
    return result;
  }

  /** Retry-After in seconds or as an HTTP date; our backoff otherwise. */
  function retryDelay(header, attempt, maxBackoff) {
    var seconds = header ? Number(header) : NaN;
    if (header && isNaN(seconds)) seconds = (Date.parse(header) - Date.now()) / 1000;
    if (seconds >= 0) return Math.min(seconds, 3600) * 1000;
    var base = Math.min(maxBackoff, 1000 * Math.pow(2, attempt));
    return (base * (1 + Math.random())) / 2; // from half of it to all of it
  }

  // ----------------------------------------------------------------------------------------- consent

  /** Google Consent Mode: the last analytics_storage in the dataLayer's consent commands. */
  function consentModeState() {
    var layer = window[config.dataLayerName] || [];
    var found;
    for (var i = 0; i < layer.length; i++) {
      var entry = layer[i];
      if (entry && entry[0] === 'consent' && entry[2] && entry[2].analytics_storage) {
        found = entry[2].analytics_storage === 'granted';
      }
    }
    return found;
  }

  function readConsent() {
    if (state.explicitConsent !== undefined) return state.explicitConsent;
    if (config.consent == null) return true;
    if (config.consent === 'consent-mode') return consentModeState();
    if (typeof config.consent === 'function') {
      var answer = config.consent();
      return typeof answer == 'boolean' ? answer : undefined;
    }
    return undefined;
  }

  function refreshConsent() {
    var before = state.consent;
    state.consent = readConsent();
    if (state.consent === true && before !== true) {
      // What pages left before this script reached them held (docs/install.md): reported by the next event.
      merge(state.dropped, read(persistent(), 'lost'));
      write(persistent(), 'lost', null);
      queue.adopt();
      queue.persist();
    } else if (state.consent === false && before !== false) {
      lose(queue.events, 'consent', state.dropped); // counted in memory: reported only if consent comes after all
      queue.clear(); // refused: nothing kept, nothing sent
    }
    return state.consent;
  }

  // ---------------------------------------------------------------------------------------- identity

  function clientId() {
    var store = persistent();
    var id = read(store, 'cid');
    if (!id) {
      id = state.memoryIds.cid || uuid();
      write(store, 'cid', id);
    }
    state.memoryIds.cid = id;
    return id;
  }

  function session() {
    var store = persistent();
    var now = Date.now();
    var current = read(store, 'sid') || state.memoryIds.sid;
    var fresh = utm(window.location.search);
    if (!current || now - current.last > SESSION_TIMEOUT_MS) current = { id: uuid(), last: now };
    if (fresh) current.utm = fresh; // a new campaign click re-attributes the session
    current.last = now;
    state.memoryIds.sid = current;
    write(store, 'sid', current);
    return current;
  }

  /** The client's next event number: read, increment, write at once, so two tabs never give the same. */
  function sequence(id) {
    var n = Math.max(read(persistent(), 'seq') || 0, state.memoryIds[id] || 0) + 1;
    write(persistent(), 'seq', (state.memoryIds[id] = n));
    return n;
  }

  function merge(into, counts) {
    for (var kind in counts) into[kind] = (into[kind] || 0) + counts[kind];
    return into;
  }

  /**
   * Count what is lost of `events` into `counts[kind]`: only events that never left the browser (a handed-over
   * event may have arrived), with the reports they carried, which would be lost with them.
   */
  function lose(events, kind, counts) {
    for (var i = 0; i < events.length; i++) {
      if (events[i].retry) continue;
      counts[kind] = (counts[kind] || 0) + 1;
      merge(counts, events[i].dropped);
    }
    return counts;
  }

  // ------------------------------------------------------------------------------------------ events

  function build(evt, obj, ts) {
    var detail = obj && typeof obj === 'object' ? scrub(obj, 0) : null;
    // Widget events (show, hide) carry no object: they belong to the bot and process last seen.
    if (detail && detail.bot_id) state.last = { bot: detail.bot_id, process: detail.process_id };
    var s = session();
    var id = clientId();
    var event = {
      event: String(evt),
      event_id: uuid(),
      ts: ts || Date.now(),
      seq: sequence(id),
      detail: detail,
      client_id: id,
      session_id: s.id,
      page_location: window.location.href,
      page_referrer: document.referrer || undefined,
      page_title: document.title || undefined,
      language: navigator.language || undefined,
      sdk: 'loyjoy-snippet/' + VERSION
    };
    if (s.utm) event.utm = s.utm;
    event.ga_client_id = gaClientId(cookie('_ga')) || undefined;
    event.ga_session_id = gaSessionId(gaSessionCookie()) || undefined;
    if (config.consent != null) event.consent = { analytics_storage: 'granted' };
    for (var kind in state.dropped) {
      event.dropped = state.dropped; // reported once, by this event (event_id dedup counts it once)
      state.dropped = {};
      break;
    }
    var last = state.last || {};
    var bot = config.bot || last.bot;
    var process = config.process || last.process;
    var named = detail || {};
    if (bot && !named.bot_id) event.bot_id = String(bot);
    if (process && !named.process_id) event.process_id = String(process);
    if (config.tenant && !named.tenant_id) event.tenant_id = String(config.tenant);
    return event;
  }

  /** The seed's dataLayer push, byte for byte: existing GTM triggers keep working. */
  function pushDataLayer(evt, obj) {
    var dataLayer = window[config.dataLayerName];
    dataLayer &&
      dataLayer.push({ event: 'loyjoy', gaEventCategory: 'loyjoy', gaEventAction: obj && obj.process_name, gaEventLabel: evt });
  }

  function track(evt, obj, ts) {
    if (config.dataLayer && !state.stub) {
      try {
        pushDataLayer(evt, obj);
      } catch (error) {
        report(error);
      }
    }
    if (refreshConsent() === false) return;
    schedule(queue.add(build(evt, obj, ts)) >= config.batchSize ? 0 : config.flushInterval);
  }

  // ------------------------------------------------------------------------------------------- queue

  /**
   * The events not yet confirmed, oldest first, and the only code that touches them (as Snowplow's EventStore):
   * add, take a batch for a request (in flight until released), acknowledge what an answer confirmed, release
   * what failed, persist to this tab's localStorage key (only once consent allows storage), adopt the queues of
   * closed tabs. One tab at a time adopts (Web Locks), or two tabs would send the same events.
   */
  var queue = {
    events: [],
    inFlight: {}, // event_id -> true while a request carries it
    add: function (event) {
      var events = queue.events;
      events.push(event);
      if (events.length > config.maxQueue) overflow();
      queue.persist();
      return events.length;
    },
    take: function (limit) {
      var batch = [];
      for (var i = 0; i < queue.events.length && batch.length < limit; i++) {
        var event = queue.events[i];
        if (!queue.inFlight[event.event_id]) batch.push(event);
        queue.inFlight[event.event_id] = true;
      }
      return batch;
    },
    acknowledge: function (batch) {
      var done = {};
      var rest = [];
      for (var i = 0; i < batch.length; i++) done[batch[i].event_id] = true;
      for (var j = 0; j < queue.events.length; j++) if (!done[queue.events[j].event_id]) rest.push(queue.events[j]);
      queue.events = rest;
      queue.persist();
    },
    release: function (batch) {
      for (var i = 0; i < batch.length; i++) delete queue.inFlight[batch[i].event_id];
    },
    /**
     * The queue and the counts not reported yet. Storage full: a record without the events instead, counting
     * those that never left the browser as lost (`quota`) should the page go before it sends them; the next
     * successful save takes that back.
     */
    persist: function () {
      var store = persistent();
      var key = 'q:' + state.tab;
      if (store && !write(store, key, { at: Date.now(), events: queue.events, d: state.dropped })) {
        write(store, key, null);
        write(store, key, { at: Date.now(), d: lose(queue.events, 'quota', merge({}, state.dropped)) });
      }
    },
    clear: function () {
      queue.events = [];
      write(storage('localStorage'), 'q:' + state.tab, null);
    },
    adopt: function () {
      if (!persistent()) return;
      var adopt = guard(function () {
        if (adoptOrphans()) {
          queue.persist();
          schedule(0);
        }
      });
      if (navigator.locks && navigator.locks.request) {
        navigator.locks.request(PREFIX + 'adopt', { ifAvailable: true }, function (lock) {
          if (lock) adopt();
        });
      } else adopt();
    }
  };

  /** Take over the queues of tabs that are gone (closed, or this same tab before a reload): how many. */
  function adoptOrphans() {
    var store = persistent();
    var queues = PREFIX + 'q:';
    var keys = [];
    var known = {};
    var adopted = 0;
    for (var i = 0; i < store.length; i++) {
      var key = store.key(i);
      if (key && key.indexOf(queues) === 0 && key !== queues + state.tab) keys.push(key);
    }
    for (var m = 0; m < queue.events.length; m++) known[queue.events[m].event_id] = true;
    for (var k = 0; k < keys.length; k++) {
      var saved = read(store, keys[k].slice(PREFIX.length));
      var own = keys[k] === queues + state.previousTab;
      if (!saved || (!own && Date.now() - saved.at < ORPHAN_AFTER_MS)) continue; // a live tab's queue
      store.removeItem(keys[k]);
      merge(state.dropped, saved.d); // its counts not reported yet
      for (var n = 0; n < (saved.events || []).length; n++) {
        var event = saved.events[n];
        if (known[event.event_id]) continue;
        known[event.event_id] = event.later_page = true; // delivered from a later page than the one it was made on
        queue.events.push(event);
        adopted++;
      }
    }
    if (queue.events.length > config.maxQueue) overflow();
    return adopted;
  }

  /** Past maxQueue the oldest events go, counted. */
  function overflow() {
    lose(queue.events.splice(0, queue.events.length - config.maxQueue), 'overflow', state.dropped);
  }

  function schedule(delay) {
    if (state.timer && delay > 0) return;
    clearTimeout(state.timer);
    var wait = Math.max(delay, state.retryAt - Date.now(), 0);
    state.timer = setTimeout(
      guard(function () {
        state.timer = null;
        flush();
      }),
      wait
    );
  }

  function body(batch) {
    return JSON.stringify({ sent_at: Date.now(), events: batch });
  }

  function flush() {
    var consent = refreshConsent();
    if (consent === undefined && queue.events.length) return schedule(config.flushInterval); // ask again soon
    if (!config.collector || consent !== true) return;
    if (Date.now() < state.retryAt) return schedule(0);
    var batch = queue.take(config.batchSize);
    if (batch.length) send(batch, body(batch));
  }

  function bytes(payload) {
    return new Blob([payload]).size;
  }

  /** Mark a batch as handed over: a later copy of the same event says so (`retry`), for analysts. */
  function handedOver(batch) {
    for (var i = 0; i < batch.length; i++) batch[i].retry = (batch[i].retry || 0) + 1;
    queue.persist();
  }

  /**
   * One request. Its events leave the queue only on an answer that confirms them (2xx, or a final 4xx: the
   * collector kept the payload with its reason); a page that goes away first leaves them queued. Keepalive
   * lets the request outlive the page, within the browser's budget; beyond it, a plain fetch.
   */
  function send(batch, payload) {
    var size = bytes(payload);
    var keepalive = canKeepalive && state.keepaliveBytes + size <= KEEPALIVE_BUDGET;
    if (keepalive) state.keepaliveBytes += size;
    var settle = function () {
      if (keepalive) state.keepaliveBytes -= size;
      queue.release(batch);
    };
    var retry = function (response) {
      settle();
      state.backoff++;
      var delay = retryDelay(response && response.headers.get('Retry-After'), state.backoff, config.maxBackoff);
      state.retryAt = Date.now() + delay;
      schedule(delay);
    };
    handedOver(batch);
    window
      .fetch(config.collector, {
        method: 'POST',
        // a string body goes as text/plain;charset=UTF-8: a simple request, no CORS preflight
        body: payload,
        credentials: 'omit',
        keepalive: keepalive
      })
      .then(
        guard(function (response) {
          if (response.status === 429 || response.status >= 500) return retry(response);
          settle();
          queue.acknowledge(batch);
          state.backoff = 0;
          state.retryAt = 0;
          if (queue.events.length) schedule(0);
        }),
        guard(function () {
          retry(null);
        })
      );
  }

  /**
   * Page is going away: hand what is left to the browser as keepalive fetches, which ad blockers treat as the
   * site's own requests (a beacon to another site is dropped by EasyPrivacy's `$ping,third-party`, and
   * `sendBeacon` still says true). Nothing is acknowledged here: an answer that arrives confirms, the next
   * page sends again whatever none confirmed. While the collector is failing, the queue waits for that page.
   */
  function flushOnHide() {
    queue.persist();
    if (!config.collector || refreshConsent() !== true || state.backoff) return;
    var beaconed = [];
    for (;;) {
      var batch = queue.take(config.batchSize);
      if (!batch.length) break;
      var payload = body(batch);
      var room = KEEPALIVE_BUDGET - state.keepaliveBytes; // none in flight without keepalive
      while (bytes(payload) > room && batch.length > 1) {
        queue.release([batch.pop()]); // the next batch takes it
        payload = body(batch);
      }
      if (bytes(payload) > room) {
        queue.release(batch); // the rest goes from the next page
        break;
      }
      if (canKeepalive) send(batch, payload);
      else {
        beaconed.push(batch); // no answer will come: queued still, for the next page
        if (!(navigator.sendBeacon && navigator.sendBeacon(config.collector, payload))) break;
        handedOver(batch);
      }
    }
    for (var i = 0; i < beaconed.length; i++) queue.release(beaconed[i]);
  }

  // ---------------------------------------------------------------------------------------- listener

  function listener(evt, obj, ts) {
    guard(track)(evt, obj, ts);
  }

  /**
   * LoyJoy's `eventListeners` with ours added: an array of catch-alls gets ours appended; a per-event map
   * becomes one catch-all that calls the map's functions for their event, then ours.
   */
  function withListener(existing) {
    if (!existing) return [listener];
    if (Array.isArray(existing)) return existing.concat([listener]);
    return [
      function (evt, obj) {
        var own = existing[evt] || [];
        for (var i = 0; i < own.length; i++) {
          try {
            own[i](obj);
          } catch (error) {
            report(error);
          }
        }
        listener(evt, obj);
      }
    ];
  }

  /** The snippet's options, and the LoyJoy ids events fall back to: LoyJoy's boot options (or {}). */
  function configure(options) {
    for (var key in options) {
      if (hasOwn(options, key) && key !== 'loyjoy') config[key] = options[key];
    }
    var loyjoy = options.loyjoy || {};
    config.bot = loyjoy.bot;
    config.tenant = loyjoy.tenant;
    config.process = loyjoy.process;
    return loyjoy;
  }

  function start() {
    if (state.started) return;
    state.started = true;
    var tabStore = storage('sessionStorage');
    state.previousTab = read(tabStore, 'tab');
    state.tab = uuid();
    write(tabStore, 'tab', state.tab);
    refreshConsent();
    var hide = guard(flushOnHide);
    window.addEventListener('pagehide', hide);
    document.addEventListener('visibilitychange', function () {
      if (document.visibilityState === 'hidden') hide();
    });
    // Keep this tab's queue marked alive, so other tabs do not adopt it; adopt what closed tabs left.
    setInterval(
      guard(function () {
        queue.persist();
        queue.adopt();
      }),
      ORPHAN_AFTER_MS / 3
    );
    if (queue.events.length) schedule(0);
  }

  function boot(options) {
    try {
      var loyjoy = configure(options || {});
      start();
      var bootOptions = {};
      for (var key in loyjoy) if (hasOwn(loyjoy, key)) bootOptions[key] = loyjoy[key];
      bootOptions.eventListeners = withListener(loyjoy.eventListeners);
      whenLoyJoy(function () {
        window.LoyJoy('boot', bootOptions);
      });
    } catch (error) {
      report(error);
    }
  }

  /**
   * Call `fn` once LoyJoy's loader has defined window.LoyJoy, however late (a slow phone can take minutes): any
   * script's load event, caught on its way down to the element, says when to look again. Never gives up, polls
   * nothing. (The inline stub also sets a setter on window.LoyJoy; here the bytes count.)
   */
  function whenLoyJoy(fn) {
    var check = function () {
      if (typeof window.LoyJoy !== 'function') return;
      document.removeEventListener('load', check, true);
      guard(fn)();
    };
    document.addEventListener('load', check, true);
    check();
  }

  /**
   * The page's queue (docs/install.md, "The queue contract"): the inline stub or the GTM tag booted LoyJoy and
   * pushed each event into `stub.q` as [evt, obj, ts], counting in `stub.d` those past its bound. Take its
   * options, its events and its count over; from now on its `push` hands each entry straight to the listener.
   */
  function adoptStub(stub) {
    var q = stub.q;
    configure(stub.o);
    state.stub = stub; // its producer makes the dataLayer push
    start();
    if (stub.d) merge(state.dropped, { overflow: stub.d });
    q.push = function (entry) {
      listener(entry[0], entry[1], entry[2]);
    };
    while (q.length) q.push(q.shift());
  }

  var stub = window.LoyJoyCollector && window.LoyJoyCollector.stub;
  window.LoyJoyCollector = {
    version: VERSION,
    stub: stub, // its queue's path stays valid for the producer (the GTM tag pushes by that path)
    /** Boot LoyJoy with the collector's listener: { collector, loyjoy: {bot, ...}, consent, ... }. */
    boot: boot,
    /** For sites that boot LoyJoy themselves: add the returned function to their eventListeners. */
    listener: function (options) {
      configure(options || {});
      start();
      return listener;
    },
    /** Tell the snippet the visitor's choice (from a consent banner): true, false. */
    consent: function (granted) {
      state.explicitConsent = typeof granted == 'boolean' ? granted : undefined;
      if (refreshConsent() === true) schedule(0);
    },
    flush: function () {
      schedule(0);
    },
    pending: function () {
      return queue.events.length;
    },
  };
  // The pure helpers and the queue, for tests of the source; the build defines LJC_HELPERS as false and drops
  // this (it counts against the 4 KB).
  /* global LJC_HELPERS */
  if (typeof LJC_HELPERS === 'undefined' || LJC_HELPERS) {
    window.LoyJoyCollector._ = {
      scrub: scrub,
      gaClientId: gaClientId,
      gaSessionId: gaSessionId,
      utm: utm,
      retryDelay: retryDelay,
      uuid: uuid,
      withListener: withListener,
      queue: queue,
      config: config
    };
  }

  // <script src=".../loyjoy-collector.js" data-bot="..." async> (or data-process alone): boots itself, so the tag
  // works in any order, async, and inside GTM Custom HTML (data-tenant, data-consent="consent-mode" optional).
  // After the inline stub, the stub has booted LoyJoy already: this only takes its queue over.
  var attribute = function (name) {
    return (script && script.getAttribute('data-' + name)) || undefined;
  };
  if (stub) guard(adoptStub)(stub);
  else if (attribute('bot') || attribute('process')) {
    var loyjoy = { bot: attribute('bot'), process: attribute('process'), tenant: attribute('tenant') };
    for (var key in loyjoy) if (!loyjoy[key]) delete loyjoy[key];
    boot({ loyjoy: loyjoy, consent: attribute('consent') || null });
  }
})(window, document);
