___TERMS_OF_SERVICE___

By creating or modifying this file you agree to Google Tag Manager's Community
Template Gallery Developer Terms of Service available at
https://developers.google.com/tag-manager/gallery-tos (or such other URL as
Google may provide), as modified from time to time.


___INFO___

{
  "type": "TAG",
  "id": "cvt_temp_public_id",
  "version": 1,
  "securityGroups": [],
  "displayName": "LoyJoy → BigQuery collector",
  "categories": [
    "ANALYTICS",
    "CHAT"
  ],
  "brand": {
    "id": "brand_dummy",
    "displayName": "LoyJoy → BigQuery collector"
  },
  "description": "Boots the LoyJoy chat and sends its events to your own LoyJoy → BigQuery collector, after Consent Mode or a consent variable allows it. The chat boots even if the collector is down.",
  "containerContexts": [
    "WEB"
  ]
}


___TEMPLATE_PARAMETERS___

[
  {
    "type": "TEXT",
    "name": "collectorUrl",
    "displayName": "Collector URL",
    "simpleValueType": true,
    "help": "Your collector's https URL (<code>terraform output -raw collector_url</code>), e.g. <code>https://loyjoy-collector-abc-ew.a.run.app</code>. The tag loads <code>/loyjoy-collector.js</code> from it.",
    "valueValidators": [
      {
        "type": "NON_EMPTY"
      },
      {
        "type": "REGEX",
        "args": [
          "^\\s*https://[^\\s/?#]+(/[^\\s?#]*)?\\s*$"
        ],
        "errorMessage": "An https:// URL, without query or fragment."
      }
    ],
    "valueHint": "https://collector.example.com",
    "alwaysInSummary": true
  },
  {
    "type": "TEXT",
    "name": "bot",
    "displayName": "LoyJoy bot id",
    "simpleValueType": true,
    "help": "The bot id of LoyJoy's own boot snippet (<code>LoyJoy('boot', {bot: …})</code>). Leave empty if you boot by process id alone.",
    "alwaysInSummary": true
  },
  {
    "type": "TEXT",
    "name": "process",
    "displayName": "LoyJoy process id",
    "simpleValueType": true,
    "help": "Optional with a bot id; enough on its own (LoyJoy's current embeds boot by <code>process</code>)."
  },
  {
    "type": "RADIO",
    "name": "consent",
    "displayName": "Consent for analytics",
    "radioItems": [
      {
        "value": "consentMode",
        "displayValue": "Google Consent Mode: wait for analytics_storage to be granted"
      },
      {
        "value": "variable",
        "displayValue": "A variable (true / false / granted / denied; anything else: not decided yet)",
        "subParams": [
          {
            "type": "TEXT",
            "name": "consentVariable",
            "displayName": "Consent variable",
            "simpleValueType": true,
            "help": "Fire this tag again when the value changes (for example on your banner's event): the tag passes the new value on.",
            "enablingConditions": [
              {
                "paramName": "consent",
                "paramValue": "variable",
                "type": "EQUALS"
              }
            ]
          }
        ]
      },
      {
        "value": "none",
        "displayValue": "None: send without waiting for consent"
      }
    ],
    "simpleValueType": true,
    "defaultValue": "consentMode",
    "help": "Until consent is granted nothing is sent or stored; events wait in memory and are sent once it is. A refusal drops them. LoyJoy itself boots either way (LoyJoy recommends the chat as essential)."
  },
  {
    "type": "GROUP",
    "name": "advanced",
    "displayName": "Advanced",
    "groupStyle": "ZIPPY_CLOSED",
    "subParams": [
      {
        "type": "TEXT",
        "name": "tenant",
        "displayName": "LoyJoy tenant",
        "simpleValueType": true,
        "help": "LoyJoy's <code>tenant</code> boot option, if your LoyJoy setup uses one."
      },
      {
        "type": "TEXT",
        "name": "locale",
        "displayName": "LoyJoy locale",
        "simpleValueType": true,
        "help": "LoyJoy's <code>locale</code> boot option, e.g. <code>de</code>."
      },
      {
        "type": "TEXT",
        "name": "serviceWorkerPath",
        "displayName": "LoyJoy service worker path",
        "simpleValueType": true,
        "help": "LoyJoy's <code>serviceWorkerPath</code> boot option."
      },
      {
        "type": "CHECKBOX",
        "name": "dataLayer",
        "checkboxText": "Push LoyJoy's classic dataLayer event (event: 'loyjoy') for each chat event",
        "simpleValueType": true,
        "defaultValue": true
      },
      {
        "type": "TEXT",
        "name": "dataLayerName",
        "displayName": "dataLayer name",
        "simpleValueType": true,
        "help": "The dataLayer the snippet pushes to.",
        "defaultValue": "dataLayer",
        "enablingConditions": [
          {
            "paramName": "dataLayer",
            "paramValue": true,
            "type": "EQUALS"
          }
        ]
      },
      {
        "type": "TEXT",
        "name": "gaMeasurementId",
        "displayName": "GA4 measurement id",
        "simpleValueType": true,
        "help": "Which GA4 property's session cookie to read (<code>G-XXXX</code>), so chat events join a GA4 export. Empty: the first one found.",
        "valueValidators": [
          {
            "type": "REGEX",
            "args": [
              "^(G-[A-Z0-9]+)?$"
            ],
            "errorMessage": "G- followed by letters and digits."
          }
        ]
      },
      {
        "type": "TEXT",
        "name": "batchSize",
        "displayName": "Batch size",
        "simpleValueType": true,
        "help": "Events per request (default 20).",
        "valueValidators": [
          {
            "type": "REGEX",
            "args": [
              "^([1-9][0-9]*)?$"
            ],
            "errorMessage": "A whole number above zero, or empty for the default."
          }
        ]
      },
      {
        "type": "TEXT",
        "name": "flushInterval",
        "displayName": "Flush interval (ms)",
        "simpleValueType": true,
        "help": "How long events wait to be batched (default 1000).",
        "valueValidators": [
          {
            "type": "REGEX",
            "args": [
              "^([1-9][0-9]*)?$"
            ],
            "errorMessage": "A whole number above zero, or empty for the default."
          }
        ]
      },
      {
        "type": "TEXT",
        "name": "maxQueue",
        "displayName": "Queue limit",
        "simpleValueType": true,
        "help": "Events kept while the collector cannot be reached (default 500; the oldest go first).",
        "valueValidators": [
          {
            "type": "REGEX",
            "args": [
              "^([1-9][0-9]*)?$"
            ],
            "errorMessage": "A whole number above zero, or empty for the default."
          }
        ]
      },
      {
        "type": "TEXT",
        "name": "maxBackoff",
        "displayName": "Longest retry delay (ms)",
        "simpleValueType": true,
        "help": "Retries back off up to this (default 60000).",
        "valueValidators": [
          {
            "type": "REGEX",
            "args": [
              "^([1-9][0-9]*)?$"
            ],
            "errorMessage": "A whole number above zero, or empty for the default."
          }
        ]
      }
    ]
  }
]


___SANDBOXED_JS_FOR_WEB_TEMPLATE___

// LoyJoy -> BigQuery collector: loads the collector's snippet from your collector and boots LoyJoy through it.
const addConsentListener = require('addConsentListener');
const callInWindow = require('callInWindow');
const copyFromWindow = require('copyFromWindow');
const injectScript = require('injectScript');
const isConsentGranted = require('isConsentGranted');
const logToConsole = require('logToConsole');
const makeNumber = require('makeNumber');
const makeString = require('makeString');
const queryPermission = require('queryPermission');
const templateStorage = require('templateStorage');

const SCRIPT_PATH = '/loyjoy-collector.js';
const BOOTED = 'booted';

function log(message) {
  logToConsole('LoyJoy collector tag: ' + message);
}

function text(value) {
  return value === undefined || value === null ? '' : makeString(value).trim();
}

/** The collector's base URL, without a trailing slash; a pasted script URL is accepted too. */
function collectorBase(value) {
  let url = text(value);
  if (url.slice(url.length - SCRIPT_PATH.length) === SCRIPT_PATH) url = url.slice(0, url.length - SCRIPT_PATH.length);
  while (url.charAt(url.length - 1) === '/') url = url.slice(0, url.length - 1);
  if (url.indexOf('https://') !== 0 || url.length <= 8) return '';
  if (url.indexOf('?') >= 0 || url.indexOf('#') >= 0 || url.indexOf(' ') >= 0) return '';
  return url;
}

function positive(value) {
  if (text(value) === '') return undefined;
  const number = makeNumber(value);
  return number > 0 ? number : undefined;
}

/** A consent variable's value: true, false, or undefined while the visitor has not decided. */
function consentFromVariable(value) {
  if (value === true) return true;
  if (value === false) return false;
  const answer = text(value).toLowerCase();
  if (['true', 'granted', 'yes', '1', 'accepted', 'allow'].indexOf(answer) >= 0) return true;
  if (['false', 'denied', 'no', '0', 'rejected', 'deny'].indexOf(answer) >= 0) return false;
  return undefined;
}

function consentNow() {
  if (data.consent === 'consentMode') return isConsentGranted('analytics_storage') ? true : undefined;
  if (data.consent === 'variable') return consentFromVariable(data.consentVariable);
  return undefined;
}

function tellConsent(granted) {
  if (granted === true || granted === false) callInWindow('LoyJoyCollector.consent', granted);
}

function loyjoyOptions() {
  const loyjoy = {};
  const keys = ['bot', 'process', 'tenant', 'locale', 'serviceWorkerPath'];
  keys.forEach(function (key) {
    if (text(data[key]) !== '') loyjoy[key] = text(data[key]);
  });
  return loyjoy;
}

function snippetOptions(base, loyjoy) {
  const options = {
    collector: base + '/',
    loyjoy: loyjoy,
    // 'explicit': nothing is sent or stored until this tag tells the snippet the visitor's choice.
    consent: data.consent === 'none' ? null : 'explicit',
    dataLayer: data.dataLayer !== false
  };
  if (text(data.dataLayerName) !== '') options.dataLayerName = text(data.dataLayerName);
  if (text(data.gaMeasurementId) !== '') options.gaMeasurementId = text(data.gaMeasurementId);
  ['batchSize', 'flushInterval', 'maxQueue', 'maxBackoff'].forEach(function (key) {
    const number = positive(data[key]);
    if (number !== undefined) options[key] = number;
  });
  return options;
}

const base = collectorBase(data.collectorUrl);
const loyjoy = loyjoyOptions();
const scriptUrl = base + SCRIPT_PATH;

/** The chat never depends on analytics: without the collector, LoyJoy boots on its own. */
function bootWithoutCollector(reason) {
  log(reason + '; booting LoyJoy without the collector');
  if (!templateStorage.getItem(BOOTED)) {
    templateStorage.setItem(BOOTED, 'chat-only');
    callInWindow('LoyJoy', 'boot', loyjoy);
  }
  data.gtmOnFailure();
}

function onLoaded() {
  if (!copyFromWindow('LoyJoyCollector.version')) return bootWithoutCollector(scriptUrl + ' did not start');
  const booted = templateStorage.getItem(BOOTED);
  if (booted) {
    // Fired again (a consent or page event): only the visitor's choice can have changed.
    if (booted === 'collector' && data.consent === 'variable') tellConsent(consentNow());
    return data.gtmOnSuccess();
  }
  templateStorage.setItem(BOOTED, 'collector');
  callInWindow('LoyJoyCollector.boot', snippetOptions(base, loyjoy));
  if (data.consent !== 'none') tellConsent(consentNow());
  if (data.consent === 'consentMode') {
    addConsentListener('analytics_storage', function (consentType, granted) {
      tellConsent(granted === true);
    });
  }
  data.gtmOnSuccess();
}

if (!base) {
  log('the collector URL must be an https:// URL, for example https://collector.example.com');
  data.gtmOnFailure();
} else if (!loyjoy.bot && !loyjoy.process) {
  log('a LoyJoy bot id or process id is needed');
  data.gtmOnFailure();
} else if (!queryPermission('inject_script', scriptUrl)) {
  bootWithoutCollector('this tag may not load ' + scriptUrl);
} else {
  injectScript(scriptUrl, onLoaded, function () {
    bootWithoutCollector(scriptUrl + ' did not load');
  }, 'loyjoy-collector');
}


___WEB_PERMISSIONS___

[
  {
    "instance": {
      "key": {
        "publicId": "inject_script",
        "versionId": "1"
      },
      "param": [
        {
          "key": "urls",
          "value": {
            "type": 2,
            "listItem": [
              {
                "type": 1,
                "string": "https://*/loyjoy-collector.js"
              },
              {
                "type": 1,
                "string": "https://*/*/loyjoy-collector.js"
              }
            ]
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  },
  {
    "instance": {
      "key": {
        "publicId": "access_globals",
        "versionId": "1"
      },
      "param": [
        {
          "key": "keys",
          "value": {
            "type": 2,
            "listItem": [
              {
                "type": 3,
                "mapKey": [
                  {
                    "type": 1,
                    "string": "key"
                  },
                  {
                    "type": 1,
                    "string": "read"
                  },
                  {
                    "type": 1,
                    "string": "write"
                  },
                  {
                    "type": 1,
                    "string": "execute"
                  }
                ],
                "mapValue": [
                  {
                    "type": 1,
                    "string": "LoyJoyCollector.boot"
                  },
                  {
                    "type": 8,
                    "boolean": false
                  },
                  {
                    "type": 8,
                    "boolean": false
                  },
                  {
                    "type": 8,
                    "boolean": true
                  }
                ]
              },
              {
                "type": 3,
                "mapKey": [
                  {
                    "type": 1,
                    "string": "key"
                  },
                  {
                    "type": 1,
                    "string": "read"
                  },
                  {
                    "type": 1,
                    "string": "write"
                  },
                  {
                    "type": 1,
                    "string": "execute"
                  }
                ],
                "mapValue": [
                  {
                    "type": 1,
                    "string": "LoyJoyCollector.consent"
                  },
                  {
                    "type": 8,
                    "boolean": false
                  },
                  {
                    "type": 8,
                    "boolean": false
                  },
                  {
                    "type": 8,
                    "boolean": true
                  }
                ]
              },
              {
                "type": 3,
                "mapKey": [
                  {
                    "type": 1,
                    "string": "key"
                  },
                  {
                    "type": 1,
                    "string": "read"
                  },
                  {
                    "type": 1,
                    "string": "write"
                  },
                  {
                    "type": 1,
                    "string": "execute"
                  }
                ],
                "mapValue": [
                  {
                    "type": 1,
                    "string": "LoyJoyCollector.version"
                  },
                  {
                    "type": 8,
                    "boolean": true
                  },
                  {
                    "type": 8,
                    "boolean": false
                  },
                  {
                    "type": 8,
                    "boolean": false
                  }
                ]
              },
              {
                "type": 3,
                "mapKey": [
                  {
                    "type": 1,
                    "string": "key"
                  },
                  {
                    "type": 1,
                    "string": "read"
                  },
                  {
                    "type": 1,
                    "string": "write"
                  },
                  {
                    "type": 1,
                    "string": "execute"
                  }
                ],
                "mapValue": [
                  {
                    "type": 1,
                    "string": "LoyJoy"
                  },
                  {
                    "type": 8,
                    "boolean": false
                  },
                  {
                    "type": 8,
                    "boolean": false
                  },
                  {
                    "type": 8,
                    "boolean": true
                  }
                ]
              }
            ]
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  },
  {
    "instance": {
      "key": {
        "publicId": "access_consent",
        "versionId": "1"
      },
      "param": [
        {
          "key": "consentTypes",
          "value": {
            "type": 2,
            "listItem": [
              {
                "type": 3,
                "mapKey": [
                  {
                    "type": 1,
                    "string": "consentType"
                  },
                  {
                    "type": 1,
                    "string": "read"
                  },
                  {
                    "type": 1,
                    "string": "write"
                  }
                ],
                "mapValue": [
                  {
                    "type": 1,
                    "string": "analytics_storage"
                  },
                  {
                    "type": 8,
                    "boolean": true
                  },
                  {
                    "type": 8,
                    "boolean": false
                  }
                ]
              }
            ]
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  },
  {
    "instance": {
      "key": {
        "publicId": "logging",
        "versionId": "1"
      },
      "param": [
        {
          "key": "environments",
          "value": {
            "type": 1,
            "string": "debug"
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  },
  {
    "instance": {
      "key": {
        "publicId": "access_template_storage",
        "versionId": "1"
      },
      "param": []
    },
    "isRequired": true
  }
]


___TESTS___

scenarios:
- name: Loads the snippet from the collector and boots LoyJoy through it
  code: |-
    runCode(mockData);
    assertThat(injected).isEqualTo(['https://collector.example.com/loyjoy-collector.js', 'loyjoy-collector']);
    assertThat(windowCalls).isEqualTo([['LoyJoyCollector.boot', {
      collector: 'https://collector.example.com/',
      loyjoy: {bot: 'bot-1'},
      consent: null,
      dataLayer: true
    }]]);
    assertApi('isConsentGranted').wasNotCalled();
    assertApi('gtmOnSuccess').wasCalled();
    assertApi('gtmOnFailure').wasNotCalled();
- name: A trailing slash or the script's own URL is the same collector
  code: |-
    mockData.collectorUrl = ' https://collector.example.com/loyjoy-collector.js ';
    runCode(mockData);
    storage = {};
    mockData.collectorUrl = 'https://collector.example.com//';
    runCode(mockData);
    assertApi('injectScript').wasCalled();
    assertThat(injected).isEqualTo(['https://collector.example.com/loyjoy-collector.js', 'loyjoy-collector']);
    assertThat(windowCalls.length).isEqualTo(2);
- name: Refuses a collector URL that is not https
  code: |-
    mockData.collectorUrl = 'http://collector.example.com';
    runCode(mockData);
    assertApi('injectScript').wasNotCalled();
    assertApi('gtmOnFailure').wasCalled();
    assertApi('gtmOnSuccess').wasNotCalled();
- name: Needs a bot id or a process id
  code: |-
    mockData.bot = '';
    runCode(mockData);
    assertApi('injectScript').wasNotCalled();
    assertApi('gtmOnFailure').wasCalled();
- name: A process id alone boots LoyJoy (LoyJoy's current embeds)
  code: |-
    mockData.bot = '';
    mockData.process = ' p-1 ';
    runCode(mockData);
    assertThat(windowCalls[0][1].loyjoy).isEqualTo({process: 'p-1'});
    assertApi('gtmOnSuccess').wasCalled();
- name: Options reach the snippet, numbers as numbers
  code: |-
    mockData.tenant = 't-1';
    mockData.locale = 'de';
    mockData.dataLayer = false;
    mockData.dataLayerName = 'myLayer';
    mockData.gaMeasurementId = 'G-ABC123';
    mockData.batchSize = '5';
    mockData.flushInterval = '250';
    mockData.maxQueue = '';
    mockData.maxBackoff = 'soon';
    runCode(mockData);
    assertThat(windowCalls[0][1]).isEqualTo({
      collector: 'https://collector.example.com/',
      loyjoy: {bot: 'bot-1', tenant: 't-1', locale: 'de'},
      consent: null,
      dataLayer: false,
      dataLayerName: 'myLayer',
      gaMeasurementId: 'G-ABC123',
      batchSize: 5,
      flushInterval: 250
    });
- name: Consent Mode already granted is passed on at once
  code: |-
    mockData.consent = 'consentMode';
    mock('isConsentGranted', function (type) { return type === 'analytics_storage'; });
    runCode(mockData);
    assertThat(windowCalls[0][1].consent).isEqualTo('explicit');
    assertThat(windowCalls[1]).isEqualTo(['LoyJoyCollector.consent', true]);
    assertApi('addConsentListener').wasCalled();
- name: Consent Mode not yet granted waits, then follows the visitor's choice
  code: |-
    mockData.consent = 'consentMode';
    let listener;
    mock('isConsentGranted', function () { return false; });
    mock('addConsentListener', function (type, fn) { assertThat(type).isEqualTo('analytics_storage'); listener = fn; });
    runCode(mockData);
    assertThat(windowCalls.length).isEqualTo(1);
    listener('analytics_storage', true);
    assertThat(windowCalls[1]).isEqualTo(['LoyJoyCollector.consent', true]);
    listener('analytics_storage', false);
    assertThat(windowCalls[2]).isEqualTo(['LoyJoyCollector.consent', false]);
- name: A consent variable is read on every firing
  code: |-
    mockData.consent = 'variable';
    mockData.consentVariable = 'pending';
    runCode(mockData);
    assertThat(windowCalls.length).isEqualTo(1);
    mockData.consentVariable = 'granted';
    runCode(mockData);
    mockData.consentVariable = false;
    runCode(mockData);
    assertThat(windowCalls).isEqualTo([
      ['LoyJoyCollector.boot', windowCalls[0][1]],
      ['LoyJoyCollector.consent', true],
      ['LoyJoyCollector.consent', false]
    ]);
    assertApi('isConsentGranted').wasNotCalled();
- name: Fired twice, boots once
  code: |-
    runCode(mockData);
    runCode(mockData);
    assertThat(windowCalls.length).isEqualTo(1);
    assertApi('gtmOnFailure').wasNotCalled();
- name: The collector unreachable, LoyJoy still boots
  code: |-
    loads = false;
    runCode(mockData);
    assertThat(windowCalls).isEqualTo([['LoyJoy', 'boot', {bot: 'bot-1'}]]);
    assertApi('gtmOnFailure').wasCalled();
- name: A broken collector script, LoyJoy still boots
  code: |-
    version = undefined;
    runCode(mockData);
    assertThat(windowCalls).isEqualTo([['LoyJoy', 'boot', {bot: 'bot-1'}]]);
    assertApi('gtmOnFailure').wasCalled();
setup: |-
  const mockData = {
    collectorUrl: 'https://collector.example.com',
    bot: 'bot-1',
    consent: 'none',
    dataLayer: true
  };
  let injected;
  let loads = true;
  let version = '0.1.0';
  let windowCalls = [];
  let storage = {};
  mock('injectScript', function (url, onSuccess, onFailure, cacheToken) {
    injected = [url, cacheToken];
    if (loads) onSuccess(); else onFailure();
  });
  mock('copyFromWindow', function (key) {
    return key === 'LoyJoyCollector.version' ? version : undefined;
  });
  mock('callInWindow', function (path, a, b) {
    windowCalls.push(b === undefined ? [path, a] : [path, a, b]);
  });
  mockObject('templateStorage', {
    getItem: function (key) { return storage[key]; },
    setItem: function (key, value) { storage[key] = value; },
    removeItem: function (key) { storage[key] = undefined; },
    clear: function () { storage = {}; }
  });


___NOTES___

The snippet itself (queue, retries, privacy) is documented in the repository's README (section "Google Tag Manager").
Permissions: injects only https://<host>/loyjoy-collector.js (or one path below: <host>/<prefix>/loyjoy-collector.js);
calls LoyJoyCollector.boot, LoyJoyCollector.consent and LoyJoy (the chat-only fallback); reads LoyJoyCollector.version;
reads the analytics_storage consent; logs in preview mode only; keeps one flag in templateStorage (booted once per page).
These tests run offline in the repository's harness (tests/test_gtm_template.py) as well as in GTM.
