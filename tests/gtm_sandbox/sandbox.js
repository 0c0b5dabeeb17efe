/*
 * An offline stand-in for Google Tag Manager's sandbox of web tag templates, for our tests only. Nothing of
 * GTM's own code is available here, so this follows GTM's public documentation of the sandboxed APIs
 * (developers.google.com/tag-platform/tag-manager/templates/api), of their permissions (…/permissions) and of
 * the template test API (…/templates/tests). One file for both places it runs: Node (runner.js, the unit
 * tests and ___TESTS___) and a real browser page (the end-to-end test), where the APIs act on the real window.
 *
 * Every API call is checked against the permissions the template declares, when it is made, as GTM does: a
 * call outside them throws, and the tag fails. Values cross the sandbox's edge as copies (objects and arrays
 * copied, functions wrapped), as GTM's documentation says of copyFromWindow and callInWindow.
 */
(function (root, factory) {
  if (typeof module === 'object' && module.exports) module.exports = factory();
  else root.GtmSandbox = factory();
})(this, function () {
  'use strict';

  // -------------------------------------------------------------------------------------- permissions

  function PermissionError(permission, message) {
    var error = new Error('Permission ' + permission + ' denied: ' + message);
    error.name = 'PermissionError';
    error.permission = permission;
    return error;
  }

  /** GTM's typed permission values (1 string, 2 list, 3 map, 8 boolean) as plain JSON. */
  function plain(value) {
    if (!value || typeof value !== 'object') return value;
    if (value.type === 1) return value.string;
    if (value.type === 8) return value.boolean;
    if (value.type === 2) return (value.listItem || []).map(plain);
    if (value.type === 3) {
      var out = {};
      for (var i = 0; i < value.mapKey.length; i++) out[plain(value.mapKey[i])] = plain(value.mapValue[i]);
      return out;
    }
    throw new Error('unknown permission value type ' + value.type);
  }

  /** ___WEB_PERMISSIONS___ (GTM's JSON) as {publicId: {param: value}}. */
  function normalizePermissions(raw) {
    var out = {};
    (raw || []).forEach(function (entry) {
      var id = entry.instance.key.publicId;
      var params = {};
      (entry.instance.param || []).forEach(function (p) {
        params[p.key] = plain(p.value);
      });
      out[id] = params;
    });
    return out;
  }

  /**
   * GTM's URL match patterns as the permissions page describes them: scheme and host must match (a host of `*`
   * is any host, `*.example.com` any subdomain of it), and `*` in the path matches any run of characters. Our
   * reading of the page; GTM's exact matcher is not public.
   */
  function urlMatches(pattern, url) {
    var p = /^([a-z]+):\/\/([^/]+)(\/.*)?$/i.exec(pattern);
    var u = /^([a-z]+):\/\/([^/?#]+)([^?#]*)(\?[^#]*)?(#.*)?$/i.exec(url);
    if (!p || !u) return false;
    if (p[1].toLowerCase() !== u[1].toLowerCase()) return false;
    var host = u[2].toLowerCase();
    var wanted = p[2].toLowerCase();
    if (wanted !== '*') {
      if (wanted.indexOf('*.') === 0) {
        var suffix = wanted.slice(1);
        if (host.length <= suffix.length || host.slice(-suffix.length) !== suffix) return false;
      } else if (wanted !== host) return false;
    }
    var path = p[3] || '/';
    var escaped = path.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
    return new RegExp('^' + escaped + '$').test(u[3] || '/');
  }

  function globalRule(permissions, key) {
    var keys = (permissions.access_globals && permissions.access_globals.keys) || [];
    for (var i = 0; i < keys.length; i++) if (keys[i].key === key) return keys[i];
    return null;
  }

  /** The answer queryPermission gives, and the check every API makes before it acts. */
  function allowed(permissions, env, id, a, b) {
    var p = permissions[id];
    if (!p) return false;
    switch (id) {
      case 'inject_script':
        return (p.urls || []).some(function (pattern) {
          return urlMatches(pattern, String(a));
        });
      case 'access_globals': {
        var rule = globalRule(permissions, b);
        if (!rule) return false;
        if (a === 'readwrite') return !!(rule.read && rule.write);
        return !!rule[a];
      }
      case 'access_consent':
        return (p.consentTypes || []).some(function (t) {
          return t.consentType === a && !!t[b];
        });
      case 'logging':
        return p.environments === 'all' || (p.environments === 'debug' && !!env.debug);
      case 'access_local_storage':
        return (p.keys || []).some(function (k) {
          return k.key === a && !!k[b];
        });
      case 'access_template_storage':
        return true;
      default:
        return false;
    }
  }

  // ------------------------------------------------------------------------------------ the edge

  /*
   * Values cross the sandbox's edge as GTM's runtime converts them (REFERENCE.md §9: Google's API docs and the
   * conversion code of a gtm.js build): strings, numbers, booleans, null and undefined as they are; arrays and
   * plain objects (whose prototype is a realm's Object.prototype, or null) deep-copied; an `arguments` object
   * as an array; a function wrapped, so that calling it converts its arguments the other way and its result
   * back; anything else (a Date, a class instance, a DOM node, an Event, a RegExp, a Map) becomes undefined.
   * The same rules apply both ways; only which side's wrapper calls which differs.
   */
  function isPlain(value) {
    var proto = Object.getPrototypeOf(value);
    return proto === null || Object.getPrototypeOf(proto) === null;
  }

  function isArguments(value) {
    return Object.prototype.toString.call(value) === '[object Arguments]';
  }

  function convert(value, depth, wrap) {
    if (depth > 50) throw new Error('a value nested too deeply to cross the sandbox edge');
    if (value === null || value === undefined) return value;
    var type = typeof value;
    if (type === 'string' || type === 'number' || type === 'boolean') return value;
    if (type === 'function') return wrap(value);
    if (type !== 'object') return undefined; // symbols, bigints
    if (Array.isArray(value) || isArguments(value)) {
      var list = [];
      for (var i = 0; i < value.length; i++) list.push(convert(value[i], depth + 1, wrap));
      return list;
    }
    if (!isPlain(value)) return undefined;
    var out = {};
    Object.keys(value).forEach(function (k) {
      out[k] = convert(value[k], depth + 1, wrap);
    });
    return out;
  }

  /** Into the sandbox: a page function becomes a wrapper that hands the page copies and returns a copy. */
  function copyIn(value) {
    return convert(value, 0, function (fn) {
      return function () {
        var args = [];
        for (var i = 0; i < arguments.length; i++) args.push(copyOut(arguments[i]));
        return copyIn(fn.apply(null, args));
      };
    });
  }

  /** Out of the sandbox: a sandboxed function becomes a native one the page can call (LoyJoy's listener). */
  function copyOut(value) {
    return convert(value, 0, function (fn) {
      return function () {
        var args = [];
        for (var i = 0; i < arguments.length; i++) args.push(copyIn(arguments[i]));
        return copyOut(fn.apply(null, args));
      };
    });
  }

  function lookup(win, path) {
    var parts = String(path).split('.');
    var owner = null;
    var value = win;
    for (var i = 0; i < parts.length; i++) {
      if (value === null || value === undefined) return { owner: null, value: undefined };
      owner = value;
      value = value[parts[i]];
    }
    return { owner: owner, value: value };
  }

  // ------------------------------------------------------------------------------------- the APIs

  /**
   * The sandboxed APIs this harness implements, over an environment:
   *   env.window      the global object the window APIs act on (the real window in a browser)
   *   env.loadScript  function (url, onload, onerror): how a script is injected
   *   env.debug       whether the container runs in preview (debug) mode, for logToConsole
   *   env.log         where logToConsole writes
   * APIs GTM has but this harness does not implement are refused by the checker, not faked.
   */
  function createRuntime(rawPermissions, env) {
    var permissions = normalizePermissions(rawPermissions);
    var consent = { state: {}, listeners: [] };
    var storage = {};
    var scripts = {}; // cacheToken or url -> {state: 'loading'|'loaded'|'failed', waiting: [[ok, ko]]}
    var calls = []; // [apiName, args] of every call, for assertApi and for the tests

    var runtime = null; // set below: the object this function returns

    /** A sandboxed callback run later (script loaded, consent changed): its exception fails the tag, as in GTM. */
    function guarded(fn) {
      return function () {
        try {
          return fn.apply(null, arguments);
        } catch (error) {
          runtime.errors.push(String((error && error.message) || error));
          if (runtime.outcome && runtime.outcome.result === 'pending') {
            runtime.outcome.result = 'error';
            runtime.outcome.error = String((error && error.message) || error);
          }
        }
      };
    }

    function need(id, a, b, what) {
      if (!allowed(permissions, env, id, a, b)) throw PermissionError(id, what);
    }

    function later(fn) {
      (env.defer || setTimeout)(fn, 0);
    }

    /** The array at `key`, made if missing (its parent must exist), as createQueue and createArgumentsQueue do. */
    function arrayAt(key) {
      var found = lookup(env.window, key);
      if (found.value !== undefined) return found.value;
      var parts = String(key).split('.');
      var owner = lookup(env.window, parts.slice(0, -1).join('.') || null);
      var parent = parts.length > 1 ? owner.value : env.window;
      if (parent === null || parent === undefined) throw new Error('no parent object for window.' + key);
      parent[parts[parts.length - 1]] = [];
      return parent[parts[parts.length - 1]];
    }

    var apis = {
      injectScript: function (url, onSuccess, onFailure, cacheToken) {
        need('inject_script', url, null, 'inject ' + url);
        var key = cacheToken ? 'token:' + cacheToken : 'url:' + url;
        var entry = scripts[key];
        var ok = guarded(function () {
          if (typeof onSuccess === 'function') onSuccess();
        });
        var ko = guarded(function () {
          if (typeof onFailure === 'function') onFailure();
        });
        if (entry && entry.state === 'loaded') return later(ok);
        if (entry && entry.state === 'failed') return later(ko);
        if (entry) return entry.waiting.push([ok, ko]);
        entry = scripts[key] = { state: 'loading', waiting: [[ok, ko]] };
        env.loadScript(
          String(url),
          function () {
            entry.state = 'loaded';
            entry.waiting.splice(0).forEach(function (w) {
              w[0]();
            });
          },
          function () {
            entry.state = 'failed';
            entry.waiting.splice(0).forEach(function (w) {
              w[1]();
            });
          }
        );
      },
      copyFromWindow: function (key) {
        need('access_globals', 'read', key, 'read window.' + key);
        return copyIn(lookup(env.window, key).value);
      },
      setInWindow: function (key, value, overrideExisting) {
        need('access_globals', 'write', key, 'write window.' + key);
        var parts = String(key).split('.');
        var owner = env.window;
        for (var i = 0; i < parts.length - 1; i++) {
          if (owner[parts[i]] === undefined || owner[parts[i]] === null) return false;
          owner = owner[parts[i]];
        }
        var last = parts[parts.length - 1];
        if (owner[last] !== undefined && !overrideExisting) return false;
        owner[last] = copyOut(value);
        return true;
      },
      callInWindow: function (path) {
        need('access_globals', 'execute', path, 'call window.' + path);
        var found = lookup(env.window, path);
        if (typeof found.value !== 'function') {
          env.log('callInWindow: window.' + path + ' is not a function');
          return undefined;
        }
        var args = [];
        for (var i = 1; i < arguments.length; i++) args.push(copyOut(arguments[i]));
        return copyIn(found.value.apply(found.owner, args));
      },
      createQueue: function (arrayKey) {
        need('access_globals', 'readwrite', arrayKey, 'read and write window.' + arrayKey);
        var array = arrayAt(arrayKey);
        return function (value) {
          array.push(copyOut(value)); // the array's own push: GTM's dataLayer.push processes the event
        };
      },
      createArgumentsQueue: function (fnKey, arrayKey) {
        need('access_globals', 'readwrite', fnKey, 'read and write window.' + fnKey);
        need('access_globals', 'readwrite', arrayKey, 'read and write window.' + arrayKey);
        var existing = lookup(env.window, fnKey).value;
        if (typeof existing === 'function') return copyIn(existing);
        var array = arrayAt(arrayKey);
        var parts = String(fnKey).split('.');
        var owner = parts.length > 1 ? lookup(env.window, parts.slice(0, -1).join('.')).value : env.window;
        owner[parts[parts.length - 1]] = function () {
          array.push(arguments);
        };
        return copyIn(owner[parts[parts.length - 1]]);
      },
      localStorage: {
        getItem: function (key) {
          need('access_local_storage', key, 'read', 'read localStorage ' + key);
          try {
            return env.window.localStorage.getItem(String(key));
          } catch (e) {
            return null;
          }
        },
        setItem: function (key, value) {
          need('access_local_storage', key, 'write', 'write localStorage ' + key);
          try {
            env.window.localStorage.setItem(String(key), String(value));
            return true;
          } catch (e) {
            return false;
          }
        },
        removeItem: function (key) {
          need('access_local_storage', key, 'write', 'write localStorage ' + key);
          try {
            env.window.localStorage.removeItem(String(key));
          } catch (e) {
            // blocked storage: nothing to remove
          }
        }
      },
      Math: {
        abs: Math.abs,
        floor: Math.floor,
        ceil: Math.ceil,
        round: Math.round,
        max: Math.max,
        min: Math.min,
        pow: Math.pow,
        sqrt: Math.sqrt
      },
      generateRandom: function (min, max) {
        return Math.floor(Math.random() * (max - min + 1)) + min;
      },
      isConsentGranted: function (consentType) {
        need('access_consent', consentType, 'read', 'read consent ' + consentType);
        return granted(consentType);
      },
      addConsentListener: function (consentType, listener) {
        need('access_consent', consentType, 'read', 'read consent ' + consentType);
        consent.listeners.push({ type: consentType, fn: guarded(listener) });
      },
      queryPermission: function (id, a, b) {
        return allowed(permissions, env, id, a, b);
      },
      logToConsole: function () {
        if (!permissions.logging) throw PermissionError('logging', 'log to the console');
        if (!allowed(permissions, env, 'logging')) return; // declared for debug only, and not in preview
        env.log(Array.prototype.slice.call(arguments).map(String).join(' '));
      },
      templateStorage: {
        getItem: function (key) {
          need('access_template_storage', null, null, 'templateStorage');
          return storage.hasOwnProperty(key) ? storage[key] : null;
        },
        setItem: function (key, value) {
          need('access_template_storage', null, null, 'templateStorage');
          storage[key] = value;
        },
        removeItem: function (key) {
          need('access_template_storage', null, null, 'templateStorage');
          delete storage[key];
        },
        clear: function () {
          need('access_template_storage', null, null, 'templateStorage');
          storage = {};
        }
      },
      makeString: function (value) {
        if (value === undefined || value === null) return String(value);
        if (typeof value === 'object') return JSON.stringify(value);
        return String(value);
      },
      makeNumber: function (value) {
        return Number(value);
      },
      makeInteger: function (value) {
        var n = Number(value);
        return n < 0 ? Math.ceil(n) : Math.floor(n);
      },
      getType: function (value) {
        if (value === null) return 'null';
        if (Array.isArray(value)) return 'array';
        return typeof value;
      },
      encodeUriComponent: function (value) {
        return encodeURIComponent(String(value));
      },
      getTimestampMillis: function () {
        return Date.now();
      },
      callLater: function (fn) {
        later(guarded(fn));
      },
      JSON: {
        parse: function (text) {
          try {
            return JSON.parse(text);
          } catch (e) {
            return undefined;
          }
        },
        stringify: function (value) {
          return JSON.stringify(value);
        }
      }
    };

    /** GTM: a consent type is granted when set to granted or not set at all. */
    function granted(consentType) {
      return consent.state[consentType] === undefined || consent.state[consentType] === true;
    }

    /**
     * GTM's consent state changing (a consent banner's update): listeners hear of every change between denied
     * and granted; an unset type counts as granted, so setting it to granted is no change.
     */
    function updateConsent(consentType, value) {
      var before = granted(consentType);
      consent.state[consentType] = value === true;
      if (before === (value === true)) return;
      consent.listeners.forEach(function (l) {
        if (l.type === consentType) l.fn(consentType, value === true);
      });
    }

    function setDefaultConsent(consentType, granted) {
      consent.state[consentType] = granted === true;
    }

    runtime = {
      now: env.now,
      permissions: permissions,
      apis: apis,
      calls: calls,
      errors: [],
      outcome: null,
      updateConsent: updateConsent,
      setDefaultConsent: setDefaultConsent,
      storage: function () {
        return storage;
      }
    };
    return runtime;
  }

  /**
   * A `require` over the runtime: records every call (for assertApi), and serves mocks first, which GTM's
   * tests do not check against permissions.
   */
  function makeRequire(runtime, mocks) {
    return function require(name) {
      if (mocks && Object.prototype.hasOwnProperty.call(mocks, name)) {
        var mocked = mocks[name];
        if (typeof mocked === 'function') return record(runtime, name, mocked);
        return recordObject(runtime, name, mocked);
      }
      var api = runtime.apis[name];
      if (api === undefined) throw new Error('require: no API named ' + name + ' in this harness');
      if (typeof api === 'function') return record(runtime, name, api);
      return recordObject(runtime, name, api);
    };
  }

  function record(runtime, name, fn) {
    return function () {
      var args = Array.prototype.slice.call(arguments);
      runtime.calls.push([name, args]);
      return fn.apply(null, args);
    };
  }

  function recordObject(runtime, name, object) {
    var out = {};
    Object.keys(object).forEach(function (k) {
      out[k] = typeof object[k] === 'function' ? record(runtime, name + '.' + k, object[k]) : object[k];
    });
    return out;
  }

  /**
   * Compile the template's code as GTM runs it: the body of a function of `data`, with `require` its only other
   * name. Under Node the checker has already refused any other free name; in the page it is refused again here,
   * by shadowing the browser's globals the code could otherwise reach.
   */
  function compile(code) {
    var shadowed = ['window', 'document', 'self', 'globalThis', 'top', 'parent', 'frames', 'location', 'navigator',
      'localStorage', 'sessionStorage', 'fetch', 'XMLHttpRequest', 'setTimeout', 'setInterval', 'Function'];
    var params = ['require', 'data'].concat(shadowed);
    /* eslint-disable-next-line no-new-func */
    // An inner function of its own: the code may declare a shadowed name (`const localStorage = require(…)`).
    return new Function(params.join(','), '"use strict";\nreturn (function () {\n' + code + '\n})();');
  }

  /**
   * Fire the tag once: { result: 'success' | 'failure' | 'pending' | 'error', error }. 'pending' means neither
   * gtmOnSuccess nor gtmOnFailure has been called yet (a callback may still come).
   */
  function fire(runtime, code, data, mocks, compiler, wrapData) {
    var outcome = { result: 'pending', error: null };
    runtime.outcome = outcome;
    var input = copyIn(data || {});
    var now = runtime.now || Date.now;
    outcome.firedAt = now();
    input.gtmOnSuccess = function () {
      runtime.calls.push(['gtmOnSuccess', []]);
      if (outcome.result === 'pending') {
        outcome.result = 'success';
        outcome.signalledAt = now();
      }
    };
    input.gtmOnFailure = function () {
      runtime.calls.push(['gtmOnFailure', []]);
      if (outcome.result === 'pending') {
        outcome.result = 'failure';
        outcome.signalledAt = now();
      }
    };
    try {
      outcome.returned = (compiler || compile)(code)(makeRequire(runtime, mocks), wrapData ? wrapData(input) : input);
    } catch (error) {
      outcome.result = 'error'; // GTM: an exception fails the tag
      outcome.error = String((error && error.message) || error);
      outcome.permission = error && error.permission;
    }
    return outcome;
  }

  /**
   * A real page as the environment: scripts injected as GTM does (an async script element in the head).
   * `resolve` ({url prefix: where the browser really fetches it}) stands in for DNS: permissions are checked on
   * the URL the template asks for (https://stable.loyjoy.com/widget.js), the browser fetches a local server.
   */
  function pageEnv(win, logs, resolve) {
    function fetched(url) {
      for (var prefix in resolve || {}) if (url.indexOf(prefix) === 0) return resolve[prefix] + url.slice(prefix.length);
      return url;
    }
    return {
      window: win,
      debug: true,
      now: function () {
        return win.performance.now(); // the clock of the page's own marks (LoyJoy's boot)
      },
      log: function (line) {
        logs.push(line);
      },
      loadScript: function (url, onload, onerror) {
        var script = win.document.createElement('script');
        script.async = true;
        script.src = fetched(url);
        script.onload = onload;
        script.onerror = onerror;
        win.document.head.appendChild(script);
      }
    };
  }

  return {
    pageEnv: pageEnv,
    normalizePermissions: normalizePermissions,
    urlMatches: urlMatches,
    allowed: allowed,
    createRuntime: createRuntime,
    makeRequire: makeRequire,
    compile: compile,
    fire: fire,
    copyIn: copyIn,
    copyOut: copyOut
  };
});
