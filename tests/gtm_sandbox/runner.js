/*
 * Node side of the GTM template harness. Reads one JSON request on stdin, writes one JSON answer on stdout:
 *   {action: 'check', code, permissions, mode?, extraGlobals?}   -> {errors, apis}
 *   {action: 'check', programs: [{code, permissions?, mode?}]}    -> [{errors, apis}]
 *   {action: 'fire', code, permissions, steps: [...], scripts}    -> {outcomes, calls, window, logs, errors}
 *   {action: 'tests', code, permissions, setup, scenarios}        -> {results: [{name, passed, error}]}
 * The template's code and the tests' code run in a fresh vm context each, whose only names are the ones
 * GTM gives them; checker.js has refused any other free name before they get here.
 */
'use strict';

const vm = require('vm');
const sandbox = require('./sandbox.js');
const checker = require('./checker.js');

function read() {
  return new Promise((resolve) => {
    let text = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk) => (text += chunk));
    process.stdin.on('end', () => resolve(JSON.parse(text)));
  });
}

/**
 * A vm context whose global object holds nothing the sandbox lacks: its built-in globals (Object, Date, RegExp,
 * eval, …) deleted, so that even a name the checker missed is undefined, as in GTM. Literals still work: they
 * need no global name.
 */
function bareContext() {
  const context = vm.createContext({});
  vm.runInContext(
    '(function (g) { Object.getOwnPropertyNames(g).forEach(function (name) {' +
      " if (name !== 'undefined' && name !== 'NaN' && name !== 'Infinity') delete g[name]; }); })(globalThis);",
    context
  );
  return context;
}

/** The template as a function of (require, data), in a context of its own: no Node, no harness in reach. */
function vmCompile(code) {
  return vm.runInContext('(function (require, data) {\n"use strict";\n' + code + '\n})', bareContext(), { filename: 'template.js' });
}

/**
 * A clock the steps move by hand: window.setTimeout and script loads run on it, so a test can say "1.5 s later"
 * without waiting, and nothing runs on its own between steps.
 */
function virtualClock() {
  let now = 0;
  let seq = 0;
  const timers = [];
  const clock = {
    now: () => now,
    setTimeout(fn, ms) {
      timers.push({ at: now + Math.max(0, Number(ms) || 0), seq: seq++, fn });
      return seq;
    },
    /** Run every timer due up to now + ms, in time order (timers they set included). */
    advance(ms) {
      const until = now + ms;
      for (;;) {
        timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
        if (!timers.length || timers[0].at > until) break;
        const timer = timers.shift();
        now = Math.max(now, timer.at);
        timer.fn();
      }
      now = until;
    },
    pending: () => timers.length
  };
  return clock;
}

/**
 * A page without a browser. `window` is a plain object with what the template reaches: setTimeout (the virtual
 * clock), addEventListener (listeners the steps dispatch to), document.readyState, localStorage, dataLayer.
 * Scripts take effect by kind (request.scripts: url -> kind; a URL's query is ignored):
 *   'loyjoy'   LoyJoy's loader: defines window.LoyJoy, which records boots and keeps the listeners
 *   'snippet'  the collector's script: adopts LoyJoyCollector.stub as the real one does (its events recorded)
 *   'broken'   loads, but defines nothing (a deploy that throws)
 *   'fail'     never loads (collector down, blocked, 5xx)
 *   'hang'     never answers, until a `release` step
 * Unknown URLs fail. `loyjoy: true` defines window.LoyJoy before the tag fires (the page's own loader ran);
 * `stubFirst: true` puts the inline stub's queue on the page first.
 */
function simulatedEnv(request, logs, clock) {
  const win = { __records: [], __listeners: [], __storage: {}, dataLayer: [] };
  const record = (what) => win.__records.push(what);
  const scripts = Object.assign({}, request.scripts || {});
  const hanging = [];
  win.document = { readyState: request.readyState || 'loading' };
  win.setTimeout = (fn, ms) => clock.setTimeout(fn, ms);
  win.addEventListener = (type, fn, capture) => win.__listeners.push({ type, fn, capture: !!capture });
  win.localStorage = {
    getItem: (k) => (Object.prototype.hasOwnProperty.call(win.__storage, k) ? win.__storage[k] : null),
    setItem: (k, v) => {
      win.__storage[k] = String(v);
    },
    removeItem: (k) => {
      delete win.__storage[k];
    }
  };
  const defineLoyJoy = () => {
    win.LoyJoy = function (command, options) {
      record(['LoyJoy', command, options]);
      if (command === 'boot') win.__booted = options;
    };
  };
  if (request.loyjoy === true) defineLoyJoy();
  if (request.stubFirst) win.LoyJoyCollector = { stub: { o: {}, q: [], d: 0 } }; // the inline stub ran first
  const kindOf = (url) => scripts[url] || scripts[url.split('?')[0]] || 'fail';
  const effects = {
    loyjoy(onload) {
      defineLoyJoy();
      onload();
    },
    snippet(onload) {
      const before = win.LoyJoyCollector;
      const stub = before && before.stub;
      win.LoyJoyCollector = {
        version: '0.0.0-sim',
        stub,
        consent(granted) {
          record(['LoyJoyCollector.consent', granted]);
        }
      };
      if (stub) {
        record(['adopted', stub.o, stub.q.slice(), stub.d]);
        stub.q.push = (entry) => record(['delivered', entry]);
        stub.q.length = 0;
      }
      onload();
    },
    broken(onload) {
      onload();
    },
    fail(onload, onerror) {
      onerror();
    },
    hang(onload, onerror, url) {
      hanging.push([url, onload, onerror]);
    }
  };
  return {
    window: win,
    debug: request.debug !== false,
    log: (line) => logs.push(line),
    defer: (fn) => clock.setTimeout(fn, 0),
    now: () => clock.now(),
    loadScript(url, onload, onerror) {
      record(['script', url]);
      const kind = kindOf(url);
      clock.setTimeout(() => effects[kind](onload, onerror, url), request.latency || 0);
    },
    scripts,
    /** The hanging loads answer now, each as its URL's kind is by then (still 'hang': as a failure). */
    release() {
      hanging.splice(0).forEach(([url, onload, onerror]) => {
        const kind = kindOf(url);
        (kind === 'hang' ? effects.fail : effects[kind])(onload, onerror, url);
      });
    },
    /** A window event; 'scriptload' is a script's load event, which only capturing window listeners see. */
    dispatch(type) {
      if (type === 'load') win.document.readyState = 'complete';
      const script = type === 'scriptload';
      win.__listeners
        .filter((l) => (script ? l.type === 'load' && l.capture : l.type === type))
        .forEach((l) => l.fn({ type }));
    },
    defineLoyJoy
  };
}

function jsonable(value) {
  return JSON.parse(
    JSON.stringify(value, (key, v) => (typeof v === 'function' ? '<function>' : v === undefined ? '<undefined>' : v))
  );
}

/**
 * Fire the tag and play the steps, each followed by every timer due at once:
 *   {fire: data} {defaultConsent: [type, bool]} {consent: [type, bool]} {advance: ms} {dispatch: 'load'|...}
 *   {emit: [evt, obj], repeat?: n} (LoyJoy calls its listeners) {scripts: {url: kind}} (from now on)
 *   {release: true} (hanging loads answer)
 *   {define: 'LoyJoy'} (a script of the page's own defines it; a `dispatch: 'scriptload'` then tells the page)
 */
async function fire(request) {
  const logs = [];
  const clock = virtualClock();
  const env = simulatedEnv(request, logs, clock);
  const runtime = sandbox.createRuntime(request.permissions, env);
  const outcomes = [];
  const fieldsRead = new Set(); // which fields of `data` the template looked at: each must be a declared field
  const track = (input) =>
    new Proxy(input, {
      get(target, key) {
        if (typeof key === 'string') fieldsRead.add(key);
        return target[key];
      }
    });
  for (const step of request.steps || [{ fire: request.data || {} }]) {
    if (step.fire) {
      const outcome = sandbox.fire(runtime, request.code, step.fire, null, vmCompile, track);
      outcomes.push(outcome);
    }
    if (step.defaultConsent) runtime.setDefaultConsent(step.defaultConsent[0], step.defaultConsent[1]);
    if (step.consent) runtime.updateConsent(step.consent[0], step.consent[1]);
    if (step.scripts) Object.assign(env.scripts, step.scripts);
    if (step.release) env.release();
    if (step.define) env.defineLoyJoy();
    if (step.dispatch) env.dispatch(step.dispatch);
    for (let i = 0; step.emit && i < (step.repeat || 1); i++) {
      const listeners = (env.window.__booted && env.window.__booted.eventListeners) || [];
      listeners.forEach((fn) => fn(step.emit[0], step.emit[1]));
    }
    clock.advance(step.advance || 0);
  }
  return {
    outcomes: jsonable(outcomes),
    calls: jsonable(runtime.calls),
    window: jsonable(env.window.__records),
    dataLayer: jsonable(env.window.dataLayer),
    storage: env.window.__storage,
    stub: jsonable(env.window.LoyJoyCollector && env.window.LoyJoyCollector.stub),
    timers: clock.pending(),
    logs,
    errors: runtime.errors,
    dataRead: Array.from(fieldsRead).sort()
  };
}

// ------------------------------------------------------------------------------------------- tests

function deepEqual(a, b) {
  if (a === b) return true;
  if (typeof a === 'number' && typeof b === 'number') return isNaN(a) && isNaN(b);
  if (!a || !b || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a).filter((k) => a[k] !== undefined);
  const kb = Object.keys(b).filter((k) => b[k] !== undefined);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => deepEqual(a[k], b[k]));
}

function show(value) {
  try {
    return JSON.stringify(value);
  } catch (e) {
    return String(value);
  }
}

class AssertionFailed extends Error {}

function assertThat(actual, message) {
  const failIf = (bad, text) => {
    if (bad) throw new AssertionFailed((message ? message + ': ' : '') + text);
  };
  const subject = show(actual);
  const contains = (x) => (Array.isArray(actual) ? actual.some((a) => deepEqual(a, x)) : typeof actual === 'string' && actual.indexOf(x) >= 0);
  const api = {
    isEqualTo: (x) => failIf(!deepEqual(actual, x), subject + ' is not equal to ' + show(x)),
    isNotEqualTo: (x) => failIf(deepEqual(actual, x), subject + ' is equal to ' + show(x)),
    isStrictlyEqualTo: (x) => failIf(actual !== x, subject + ' is not strictly ' + show(x)),
    isNotStrictlyEqualTo: (x) => failIf(actual === x, subject + ' is strictly ' + show(x)),
    isDefined: () => failIf(actual === undefined, 'value is undefined'),
    isUndefined: () => failIf(actual !== undefined, subject + ' is defined'),
    isNull: () => failIf(actual !== null, subject + ' is not null'),
    isNotNull: () => failIf(actual === null, 'value is null'),
    isTrue: () => failIf(actual !== true, subject + ' is not true'),
    isFalse: () => failIf(actual !== false, subject + ' is not false'),
    isTruthy: () => failIf(!actual, subject + ' is not truthy'),
    isFalsy: () => failIf(!!actual, subject + ' is not falsy'),
    isNaN: () => failIf(!(typeof actual === 'number' && isNaN(actual)), subject + ' is not NaN'),
    isNotNaN: () => failIf(typeof actual === 'number' && isNaN(actual), 'value is NaN'),
    isInfinity: () => failIf(actual !== Infinity && actual !== -Infinity, subject + ' is not infinite'),
    isNotInfinity: () => failIf(actual === Infinity || actual === -Infinity, 'value is infinite'),
    contains: (...xs) => xs.forEach((x) => failIf(!contains(x), subject + ' does not contain ' + show(x))),
    doesNotContain: (...xs) => xs.forEach((x) => failIf(contains(x), subject + ' contains ' + show(x))),
    isEmpty: () => failIf(!(actual && actual.length === 0), subject + ' is not empty'),
    isNotEmpty: () => failIf(!(actual && actual.length > 0), subject + ' is empty'),
    hasLength: (n) => failIf(!(actual && actual.length === n), subject + ' has not length ' + n),
    isArray: () => failIf(!Array.isArray(actual), subject + ' is not an array'),
    isBoolean: () => failIf(typeof actual !== 'boolean', subject + ' is not a boolean'),
    isFunction: () => failIf(typeof actual !== 'function', subject + ' is not a function'),
    isNumber: () => failIf(typeof actual !== 'number', subject + ' is not a number'),
    isObject: () => failIf(!(actual && typeof actual === 'object' && !Array.isArray(actual)), subject + ' is not an object'),
    isString: () => failIf(typeof actual !== 'string', subject + ' is not a string'),
    isAnyOf: (...xs) => failIf(!xs.some((x) => deepEqual(actual, x)), subject + ' is none of ' + show(xs)),
    isNoneOf: (...xs) => failIf(xs.some((x) => deepEqual(actual, x)), subject + ' is one of ' + show(xs))
  };
  return api;
}

/**
 * One ___TESTS___ scenario, as GTM runs it: the setup, then the scenario's code, in one scope; runCode fires
 * the template with the data given (plus gtmOnSuccess/gtmOnFailure); mocks replace APIs and are not
 * permission-checked; every other API is the harness's, permission-checked, on a window of its own where
 * nothing loads by itself (an unmocked injectScript neither succeeds nor fails).
 */
function runScenario(request, scenario) {
  const logs = [];
  const env = simulatedEnv({ scripts: {} }, logs, virtualClock());
  env.loadScript = () => {};
  const runtime = sandbox.createRuntime(request.permissions, env);
  const mocks = {};
  const testApi = {
    runCode(data) {
      const outcome = sandbox.fire(runtime, request.code, data, mocks, vmCompile);
      if (outcome.result === 'error') throw new Error('the template threw: ' + outcome.error);
      return outcome.returned;
    },
    mock(name, impl) {
      if (!checker.APIS[name]) throw new Error('mock: no API named ' + name);
      mocks[name] = impl;
    },
    mockObject(name, object) {
      if (!checker.APIS[name]) throw new Error('mockObject: no API named ' + name);
      mocks[name] = object;
    },
    assertApi(name) {
      const calls = () => runtime.calls.filter((c) => c[0] === name);
      return {
        wasCalled: () => {
          if (!calls().length) throw new AssertionFailed(name + ' was not called');
        },
        wasNotCalled: () => {
          if (calls().length) throw new AssertionFailed(name + ' was called ' + calls().length + ' times');
        },
        wasCalledWith: (...args) => {
          if (!calls().some((c) => deepEqual(c[1], args))) {
            throw new AssertionFailed(name + ' was not called with ' + show(args) + '; calls: ' + show(calls().map((c) => c[1])));
          }
        },
        wasNotCalledWith: (...args) => {
          if (calls().some((c) => deepEqual(c[1], args))) throw new AssertionFailed(name + ' was called with ' + show(args));
        }
      };
    },
    assertThat,
    fail(message) {
      throw new AssertionFailed(String(message));
    }
  };
  const names = ['require', 'runCode', 'mock', 'mockObject', 'assertApi', 'assertThat', 'fail'];
  const source = '(function (' + names.join(', ') + ') {\n"use strict";\n' + (request.setup || '') + '\n' + scenario.code + '\n})';
  const fn = vm.runInContext(source, bareContext(), { filename: 'test:' + scenario.name });
  fn(
    sandbox.makeRequire(runtime, mocks),
    testApi.runCode,
    testApi.mock,
    testApi.mockObject,
    testApi.assertApi,
    testApi.assertThat,
    testApi.fail
  );
}

function tests(request) {
  const results = [];
  for (const scenario of request.scenarios || []) {
    try {
      runScenario(request, scenario);
      results.push({ name: scenario.name, passed: true });
    } catch (error) {
      results.push({ name: scenario.name, passed: false, error: String((error && error.message) || error) });
    }
  }
  return { results };
}

async function main() {
  const request = await read();
  let answer;
  const checkOne = (program) =>
    checker.check(program.code, {
      mode: program.mode || 'template',
      permissions: program.permissions ? sandbox.normalizePermissions(program.permissions) : null,
      extraGlobals: program.extraGlobals || []
    });
  if (request.action === 'check') answer = request.programs ? request.programs.map(checkOne) : checkOne(request); else if (request.action === 'fire') answer = await fire(request);
  else if (request.action === 'tests') answer = tests(request);
  else throw new Error('unknown action ' + request.action);
  process.stdout.write(JSON.stringify(answer));
}

main().catch((error) => {
  process.stderr.write(String((error && error.stack) || error));
  process.exit(1);
});
