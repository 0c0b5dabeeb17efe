/*
 * The language of GTM's sandboxed JavaScript, checked on the syntax tree (acorn) before anything runs. Each
 * rule is one GTM's documentation states (developers.google.com/tag-platform/tag-manager/templates/
 * sandboxed-javascript, …/standard-library, …/api, …/permissions):
 *   - "based on ECMAScript 5.1"; of ES6 only "arrow functions and const/let declarations are available":
 *     every other ES2015+ construct is refused (template literals, classes, destructuring, spread, for-of, …);
 *   - "There is no new keyword" and "functions do not have access to the this keyword";
 *   - types are null, undefined, string, number, boolean, array, object and function, made with the literal
 *     syntax: no regular expression literals, no global constructors (no RegExp, Date, String(), …);
 *   - no global execution environment: no window, document, setTimeout, encodeURI, …: the only free names are
 *     `require` and `data` (and, in ___TESTS___, the test API), and `require` takes an API's name as a literal;
 *   - methods on built-in types are the standard library's list only; methods of the object APIs (JSON, Math,
 *     Object, templateStorage, localStorage) are theirs only;
 *   - every API a template requires needs its permission declared (GTM detects and enforces them).
 * Anything the checker cannot see through (a computed method call) is refused rather than allowed.
 */
'use strict';

const path = require('path');

function loadAcorn() {
  const candidates = [
    process.env.ACORN_PATH,
    path.join(__dirname, '..', '..', 'snippet', 'node_modules', 'acorn'),
    'acorn'
  ].filter(Boolean);
  for (const candidate of candidates) {
    try {
      return require(candidate);
    } catch (e) {
      // next
    }
  }
  throw new Error('acorn not found: run `npm ci` in snippet/ (it comes with terser)');
}

const acorn = loadAcorn();

/** APIs of web templates: the permission each needs (null: none), and the methods of the object ones. */
const APIS = {
  addConsentListener: { permission: 'access_consent' },
  addEventCallback: { permission: 'read_event_metadata' },
  aliasInWindow: { permission: 'access_globals' },
  callInWindow: { permission: 'access_globals' },
  callLater: { permission: null },
  copyFromDataLayer: { permission: 'read_data_layer' },
  copyFromWindow: { permission: 'access_globals' },
  createArgumentsQueue: { permission: 'access_globals' },
  createQueue: { permission: 'access_globals' },
  decodeUri: { permission: null },
  decodeUriComponent: { permission: null },
  encodeUri: { permission: null },
  encodeUriComponent: { permission: null },
  fromBase64: { permission: null },
  generateRandom: { permission: null },
  getContainerVersion: { permission: 'read_container_data' },
  getCookieValues: { permission: 'get_cookies' },
  getQueryParameters: { permission: 'get_url' },
  getReferrerQueryParameters: { permission: 'get_referrer' },
  getReferrerUrl: { permission: 'get_referrer' },
  getTimestamp: { permission: null },
  getTimestampMillis: { permission: null },
  getType: { permission: null },
  getUrl: { permission: 'get_url' },
  injectHiddenIframe: { permission: 'inject_hidden_iframe' },
  injectScript: { permission: 'inject_script' },
  isConsentGranted: { permission: 'access_consent' },
  JSON: { permission: null, methods: ['parse', 'stringify'] },
  localStorage: { permission: 'access_local_storage', methods: ['getItem', 'setItem', 'removeItem'] },
  logToConsole: { permission: 'logging' },
  makeInteger: { permission: null },
  makeNumber: { permission: null },
  makeString: { permission: null },
  makeTableMap: { permission: null },
  Math: { permission: null, methods: ['abs', 'floor', 'ceil', 'round', 'max', 'min', 'pow', 'sqrt'] },
  Object: { permission: null, methods: ['keys', 'values', 'entries', 'freeze', 'delete'] },
  parseUrl: { permission: null },
  queryPermission: { permission: null },
  readCharacterSet: { permission: 'read_character_set' },
  readTitle: { permission: 'read_title' },
  sendPixel: { permission: 'send_pixel' },
  setCookie: { permission: 'set_cookies' },
  setDefaultConsentState: { permission: 'access_consent' },
  setInWindow: { permission: 'access_globals' },
  sha256: { permission: null },
  templateStorage: { permission: 'access_template_storage', methods: ['getItem', 'setItem', 'removeItem', 'clear'] },
  toBase64: { permission: null },
  updateConsentState: { permission: 'access_consent' }
};

/** The standard library: the only methods of built-in types (Array, String; Object, Boolean, Number: toString). */
const STANDARD_METHODS = new Set([
  // Array
  'concat', 'every', 'filter', 'forEach', 'indexOf', 'join', 'lastIndexOf', 'map', 'pop', 'push', 'reduce',
  'reduceRight', 'reverse', 'shift', 'slice', 'some', 'sort', 'splice', 'toString', 'unshift',
  // String
  'charAt', 'match', 'replace', 'search', 'split', 'substring', 'toLowerCase', 'toLocaleLowerCase',
  'toUpperCase', 'toLocaleUpperCase', 'trim'
]);

const TEST_API = {
  runCode: null,
  mock: null,
  mockObject: null,
  fail: null,
  assertApi: ['wasCalled', 'wasNotCalled', 'wasCalledWith', 'wasNotCalledWith'],
  assertThat: [
    'isEqualTo', 'isNotEqualTo', 'isStrictlyEqualTo', 'isNotStrictlyEqualTo', 'isDefined', 'isUndefined',
    'isNull', 'isNotNull', 'isTrue', 'isFalse', 'isTruthy', 'isFalsy', 'isNaN', 'isNotNaN', 'isInfinity',
    'isNotInfinity', 'contains', 'doesNotContain', 'isEmpty', 'isNotEmpty', 'hasLength', 'isArray', 'isBoolean',
    'isFunction', 'isNumber', 'isObject', 'isString', 'isAnyOf', 'isNoneOf'
  ]
};

const ES2015_ONLY = {
  TemplateLiteral: 'template literals',
  TaggedTemplateExpression: 'tagged templates',
  ClassDeclaration: 'classes',
  ClassExpression: 'classes',
  SpreadElement: 'spread (...)',
  RestElement: 'rest parameters (...)',
  ObjectPattern: 'destructuring',
  ArrayPattern: 'destructuring',
  AssignmentPattern: 'default parameter values',
  ForOfStatement: 'for...of',
  YieldExpression: 'generators',
  MetaProperty: 'new.target',
  Super: 'super',
  ImportExpression: 'import()',
  AwaitExpression: 'async functions',
  ChainExpression: 'optional chaining',
  ImportDeclaration: 'modules',
  ExportNamedDeclaration: 'modules'
};

const FORBIDDEN_PROPERTIES = new Set(['constructor', '__proto__', 'prototype', '__defineGetter__', '__defineSetter__']);

function children(node) {
  const out = [];
  for (const key of Object.keys(node)) {
    if (key === 'type' || key === 'start' || key === 'end' || key === 'loc') continue;
    const value = node[key];
    if (Array.isArray(value)) {
      for (const item of value) if (item && typeof item.type === 'string') out.push([key, item]);
    } else if (value && typeof value.type === 'string') out.push([key, value]);
  }
  return out;
}

function isFunction(node) {
  return node.type === 'FunctionDeclaration' || node.type === 'FunctionExpression' || node.type === 'ArrowFunctionExpression';
}

/**
 * Check sandboxed code. mode 'template' (free names: require, data) or 'tests' (also the test API and the
 * setup's names). Returns {errors: [{line, message}], apis: [required API names]}.
 */
function check(code, options) {
  const mode = (options && options.mode) || 'template';
  const permissions = (options && options.permissions) || null; // normalized, or null to skip that rule
  const errors = [];
  const error = (node, message) => errors.push({ line: node && node.loc ? node.loc.start.line : 0, message });
  let ast;
  try {
    // ecmaVersion 2015 so that arrows and let/const parse; every other ES2015 construct is refused below.
    ast = acorn.parse(code, { ecmaVersion: 2015, sourceType: 'script', allowReturnOutsideFunction: true, locations: true });
  } catch (e) {
    return { errors: [{ line: e.loc ? e.loc.line : 0, message: 'syntax: ' + e.message }], apis: [] };
  }

  const globals = new Set(['require', 'data', 'undefined', 'NaN', 'Infinity']);
  if (mode === 'tests') Object.keys(TEST_API).forEach((name) => globals.add(name));

  // Scopes: one per function (var, let and const all counted function-wide: looser than ES, never stricter).
  const root = { names: new Set(), parent: null };
  const references = [];
  const bindings = {}; // name -> API, for `const x = require('API')`
  const apis = new Set();

  function declare(scope, id) {
    if (id && id.type === 'Identifier') scope.names.add(id.name);
  }

  function visit(node, parent, key, scope) {
    if (ES2015_ONLY[node.type]) error(node, 'not sandboxed JavaScript (ES5.1 plus arrows and const/let): ' + ES2015_ONLY[node.type]);
    switch (node.type) {
      case 'NewExpression':
        error(node, 'there is no `new` keyword in sandboxed JavaScript');
        break;
      case 'ThisExpression':
        error(node, 'functions have no `this` in sandboxed JavaScript');
        break;
      case 'Literal':
        if (node.regex) error(node, 'no regular expression literals: sandboxed JavaScript has no RegExp type');
        break;
      case 'WithStatement':
        error(node, '`with` is not sandboxed JavaScript');
        break;
      case 'Property':
        if (node.method || node.shorthand || node.computed || node.kind !== 'init') {
          error(node, 'ES2015 object literal forms (methods, shorthand, computed keys, accessors) are not sandboxed JavaScript');
        }
        break;
      case 'MemberExpression':
        if (!node.computed && FORBIDDEN_PROPERTIES.has(node.property.name)) {
          error(node, '`.' + node.property.name + '`: native constructors and prototypes are not reachable in the sandbox');
        }
        if (node.computed && node.property.type === 'Literal' && FORBIDDEN_PROPERTIES.has(String(node.property.value))) {
          error(node, '`[' + JSON.stringify(node.property.value) + ']`: native constructors and prototypes are not reachable');
        }
        break;
      case 'VariableDeclaration':
        break;
      case 'FunctionDeclaration':
      case 'FunctionExpression':
        if (node.generator) error(node, 'generators are not sandboxed JavaScript');
        if (node.async) error(node, 'async functions are not sandboxed JavaScript');
        break;
      case 'CallExpression':
        checkCall(node);
        break;
      default:
        break;
    }

    let inner = scope;
    if (isFunction(node)) {
      if (node.type === 'FunctionDeclaration') declare(scope, node.id);
      inner = { names: new Set(), parent: scope };
      if (node.type === 'FunctionExpression') declare(inner, node.id);
      node.params.forEach((p) => declare(inner, p));
    }
    if (node.type === 'VariableDeclarator') {
      declare(scope, node.id);
      const init = node.init;
      if (init && init.type === 'CallExpression' && init.callee.type === 'Identifier' && init.callee.name === 'require'
          && init.arguments[0] && init.arguments[0].type === 'Literal' && node.id.type === 'Identifier') {
        bindings[node.id.name] = String(init.arguments[0].value);
      }
    }
    if (node.type === 'CatchClause') declare(scope, node.param);

    if (node.type === 'Identifier' && isReference(node, parent, key)) references.push({ node, scope });

    for (const [childKey, child] of children(node)) {
      if (isFunction(node) && childKey === 'id') continue;
      visit(child, node, childKey, inner);
    }
  }

  function isReference(node, parent, key) {
    if (!parent) return true;
    if (parent.type === 'MemberExpression' && key === 'property' && !parent.computed) return false;
    if (parent.type === 'Property' && key === 'key' && !parent.computed) return false;
    if (parent.type === 'VariableDeclarator' && key === 'id') return false;
    if (isFunction(parent) && (key === 'id' || key === 'params')) return false;
    if (parent.type === 'CatchClause' && key === 'param') return false;
    if ((parent.type === 'LabeledStatement' || parent.type === 'BreakStatement' || parent.type === 'ContinueStatement') && key === 'label') return false;
    return true;
  }

  function checkCall(node) {
    // Calls are checked by shape; which names are defined is the scope pass's business.
    const callee = node.callee;
    if (callee.type === 'Identifier' && callee.name === 'require') {
      const arg = node.arguments[0];
      if (node.arguments.length !== 1 || !arg || arg.type !== 'Literal' || typeof arg.value !== 'string') {
        return error(node, "require takes one API name as a string literal, e.g. require('injectScript')");
      }
      if (!APIS[arg.value]) return error(node, "require('" + arg.value + "'): no such API in web templates");
      apis.add(arg.value);
      return;
    }
    if (callee.type !== 'MemberExpression') return;
    if (callee.computed) return error(node, 'a computed method call (x[y]()) cannot be checked against the standard library');
    const method = callee.property.name;
    const object = callee.object;
    if (object.type === 'Identifier' && bindings[object.name]) {
      const api = APIS[bindings[object.name]];
      if (!api.methods || api.methods.indexOf(method) < 0) {
        error(node, bindings[object.name] + '.' + method + ' is not part of the ' + bindings[object.name] + ' API');
      }
      return;
    }
    if (object.type === 'Identifier' && object.name === 'data' && (method === 'gtmOnSuccess' || method === 'gtmOnFailure')) return;
    if (mode === 'tests' && object.type === 'CallExpression' && object.callee.type === 'Identifier') {
      const list = TEST_API[object.callee.name];
      if (Array.isArray(list)) {
        if (list.indexOf(method) < 0) error(node, object.callee.name + '(...).' + method + ' is not part of the test API');
        return;
      }
    }
    if (!STANDARD_METHODS.has(method)) error(node, '.' + method + '() is not in the standard library of sandboxed JavaScript');
  }

  visit(ast, null, null, root);

  // Names declared anywhere in a scope count for all of it (hoisting), so resolve only now.
  for (const { node, scope } of references) {
    let s = scope;
    let found = false;
    while (s) {
      if (s.names.has(node.name)) {
        found = true;
        break;
      }
      s = s.parent;
    }
    if (!found && !globals.has(node.name) && !(options && options.extraGlobals && options.extraGlobals.indexOf(node.name) >= 0)) {
      error(node, '`' + node.name + '` is not defined: the sandbox has no global environment (use require)');
    }
  }
  checkBareRequire(ast, null, error);

  if (permissions) {
    for (const name of apis) {
      const needed = APIS[name].permission;
      if (needed && !permissions[needed]) {
        errors.push({ line: 0, message: name + ' needs the ' + needed + ' permission, which ___WEB_PERMISSIONS___ does not declare' });
      }
    }
  }
  errors.sort((a, b) => a.line - b.line);
  return { errors, apis: Array.from(apis).sort() };
}

function checkBareRequire(node, parent, error) {
  if (node.type === 'Identifier' && node.name === 'require') {
    const isCallee = parent && parent.type === 'CallExpression' && parent.callee === node;
    const isProperty = parent && parent.type === 'MemberExpression' && parent.property === node && !parent.computed;
    if (!isCallee && !isProperty) error(node, '`require` may only be called, with an API name: aliases hide what a template uses');
  }
  for (const [, child] of children(node)) checkBareRequire(child, node, error);
}

/** The names a ___TESTS___ setup declares at its top level: its scenarios may use them. */
function topLevelNames(code) {
  const ast = acorn.parse(code, { ecmaVersion: 2015, sourceType: 'script', allowReturnOutsideFunction: true });
  const names = [];
  for (const statement of ast.body) {
    if (statement.type === 'VariableDeclaration') {
      statement.declarations.forEach((d) => d.id.type === 'Identifier' && names.push(d.id.name));
    } else if (statement.type === 'FunctionDeclaration' && statement.id) names.push(statement.id.name);
  }
  return names;
}

module.exports = { check, topLevelNames, APIS, STANDARD_METHODS };
