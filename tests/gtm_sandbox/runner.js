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

function ticks(n) {
  let p = Promise.resolve();
  for (let i = 0; i < n; i++) p = p.then(() => new Promise((r) => setTimeout(r, 0)));
  return p;
}

/**
 * A page without a browser: a plain object for window, and scripts whose effect the request names:
 *   'snippet'  defines a LoyJoyCollector that records boot and consent calls (what the collector serves)
 *   'broken'   loads, but defines nothing (a deploy that throws)
 *   'fail'     never loads (collector down, blocked, 5xx)
 *   'hang'     never answers
 * Unknown URLs fail. window.LoyJoy, when `loyjoy` is set, records boots.
 */
function simulatedEnv(request, logs) {
  const win = { __records: [] };
  const record = (what) => win.__records.push(what);
  if (request.loyjoy !== false) {
    win.LoyJoy = function (command, options) {
      record(['LoyJoy', command, options]);
    };
  }
  const scripts = request.scripts || {};
  return {
    window: win,
    debug: request.debug !== false,
    log: (line) => logs.push(line),
    loadScript(url, onload, onerror) {
      record(['script', url]);
      const kind = scripts[url] || 'fail';
      setTimeout(() => {
        if (kind === 'snippet') {
          win.LoyJoyCollector = {
            version: '0.0.0-sim',
            boot(options) {
              record(['LoyJoyCollector.boot', options]);
            },
            consent(granted) {
              record(['LoyJoyCollector.consent', granted]);
            }
          };
          onload();
        } else if (kind === 'broken') onload();
        else if (kind === 'hang') {
          // nothing
        } else onerror();
      }, 0);
    }
  };
}

function jsonable(value) {
  return JSON.parse(
    JSON.stringify(value, (key, v) => (typeof v === 'function' ? '<function>' : v === undefined ? '<undefined>' : v))
  );
}

async function fire(request) {
  const logs = [];
  const env = simulatedEnv(request, logs);
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
    if (step.fire) outcomes.push(sandbox.fire(runtime, request.code, step.fire, null, vmCompile, track));
    if (step.defaultConsent) runtime.setDefaultConsent(step.defaultConsent[0], step.defaultConsent[1]);
    if (step.consent) runtime.updateConsent(step.consent[0], step.consent[1]);
    await ticks(5);
  }
  return {
    outcomes: jsonable(outcomes),
    calls: jsonable(runtime.calls),
    window: jsonable(env.window.__records),
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
  const env = simulatedEnv({ scripts: {}, loyjoy: false }, logs);
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
