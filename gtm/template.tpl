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
  "description": "Boots the LoyJoy chat at once and sends its events to your own LoyJoy → BigQuery collector once Consent Mode or a variable allows it. The chat never waits for the collector.",
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
    "help": "Your collector's https URL (<code>terraform output -raw collector_url</code>), e.g. <code>https://loyjoy-collector-abc-ew.a.run.app</code>. The tag loads <code>/loyjoy-collector.js</code> from it in the background; the chat never waits for it.",
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
    "type": "CHECKBOX",
    "name": "loadLoyJoy",
    "checkboxText": "Load LoyJoy's loader (widget.js) from this tag",
    "simpleValueType": true,
    "defaultValue": true,
    "help": "On: the tag loads LoyJoy's loader itself and boots the chat the moment it has run: the usual GTM install, with no other LoyJoy code on the page. Off: the page loads LoyJoy's loader (remove LoyJoy's own boot call); the tag boots the chat as soon as the loader has run, before or after the tag."
  },
  {
    "type": "TEXT",
    "name": "loyjoyLoaderUrl",
    "displayName": "LoyJoy loader URL",
    "simpleValueType": true,
    "defaultValue": "https://stable.loyjoy.com/widget.js",
    "help": "LoyJoy's JavaScript-API loader (without <code>?process=</code>, which renders a chat of its own). The tag may load it from <code>https://*.loyjoy.com/</code>; another host needs the tag's inject_script permission edited.",
    "valueValidators": [
      {
        "type": "REGEX",
        "args": [
          "^https://[^\\s/?#]+/[^\\s#]*$"
        ],
        "errorMessage": "An https:// URL."
      }
    ],
    "enablingConditions": [
      {
        "paramName": "loadLoyJoy",
        "paramValue": true,
        "type": "EQUALS"
      }
    ]
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
        "defaultValue": true,
        "help": "LoyJoy's own GTM snippet pushes <code>{event: 'loyjoy', gaEventCategory, gaEventAction, gaEventLabel}</code> for each chat event; the tag does the same, with or without the collector. Off if you push yourself."
      },
      {
        "type": "TEXT",
        "name": "dataLayerName",
        "displayName": "dataLayer name",
        "simpleValueType": true,
        "help": "The dataLayer the tag pushes to and reads Consent Mode from. Another name than dataLayer needs the tag's access_globals permission edited.",
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

// LoyJoy -> BigQuery collector. Boots the LoyJoy chat at once (loading LoyJoy's loader unless the page does), and
// feeds each chat event into the page's queue (docs/install.md, "The queue contract", the same queue the inline
// stub feeds). The collector's script loads in the background, with retries, and takes the queue over whenever
// it arrives: the chat never waits for it.
const addConsentListener = require('addConsentListener');
const callInWindow = require('callInWindow');
const copyFromWindow = require('copyFromWindow');
const createQueue = require('createQueue');
const getTimestampMillis = require('getTimestampMillis');
const getType = require('getType');
const injectScript = require('injectScript');
const isConsentGranted = require('isConsentGranted');
const JSON = require('JSON');
const localStorage = require('localStorage');
const logToConsole = require('logToConsole');
const makeNumber = require('makeNumber');
const makeString = require('makeString');
const Math = require('Math');
const queryPermission = require('queryPermission');
const setInWindow = require('setInWindow');
const templateStorage = require('templateStorage');

const SCRIPT_PATH = '/loyjoy-collector.js';
const LOYJOY_LOADER = 'https://stable.loyjoy.com/widget.js';
const QUEUE = 'LoyJoyCollector.stub.q';
const OVERFLOW = 'LoyJoyCollector.stub.d';
const MAX_HELD = 500; // the queue's bound, the inline stub's too
const SIGNAL_WITHIN_MS = 1500; // tag sequencing waits no longer, whatever LoyJoy's loader or the collector do
const LOST = 'ljc:lost';

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

/** What this firing knows of the visitor's choice: true, false, or undefined (not decided yet). */
function consentNow() {
  if (data.consent === 'consentMode') return isConsentGranted('analytics_storage') ? true : undefined;
  if (data.consent === 'variable') return consentFromVariable(data.consentVariable);
  return true;
}

/** The script's consent: told only once it runs, and only a decision. */
function tellConsent(granted) {
  if (data.consent === 'none' || !templateStorage.getItem('ready')) return;
  if (granted === true || granted === false) callInWindow('LoyJoyCollector.consent', granted);
}

function rememberConsent(granted) {
  templateStorage.setItem('consent', granted);
  tellConsent(granted);
}

function loyjoyOptions() {
  const loyjoy = {};
  ['bot', 'process', 'tenant', 'locale', 'serviceWorkerPath'].forEach(function (key) {
    if (text(data[key]) !== '') loyjoy[key] = text(data[key]);
  });
  return loyjoy;
}

/** The options the collector's script reads from the queue (it sends to the host it was loaded from). */
function snippetOptions(loyjoy) {
  const options = {
    loyjoy: loyjoy,
    // 'explicit': nothing is sent or stored until this tag tells the script the visitor's choice.
    consent: data.consent === 'none' ? null : 'explicit'
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
const dataLayerName = text(data.dataLayerName) || 'dataLayer';
let pushToDataLayer;
let signalled = false;
let attempts = 0;

/** gtmOnSuccess or gtmOnFailure, once: when LoyJoy boots, its loader fails, or SIGNAL_WITHIN_MS pass. */
function finish(ok) {
  if (signalled) return;
  signalled = true;
  if (ok) data.gtmOnSuccess();
  else data.gtmOnFailure();
}

/** A delay needs the page's timer: callLater has none. */
function later(fn, ms) {
  callInWindow('setTimeout', fn, ms);
}

// ------------------------------------------------------------------------------------------ the chat

/** LoyJoy's listener: the seed's dataLayer push, then the queue (bounded; what goes past it is counted). */
function onChatEvent(evt, obj) {
  if (pushToDataLayer) {
    pushToDataLayer({ event: 'loyjoy', gaEventCategory: 'loyjoy', gaEventAction: obj && obj.process_name, gaEventLabel: evt });
  }
  if (copyFromWindow(QUEUE + '.length') < MAX_HELD) callInWindow(QUEUE + '.push', [evt, obj, getTimestampMillis()]);
  else setInWindow(OVERFLOW, (copyFromWindow(OVERFLOW) || 0) + 1, true);
}

function listener(evt, obj) {
  try {
    onChatEvent(evt, obj);
  } catch (error) {
    log('a chat event could not be queued: ' + makeString(error)); // never into LoyJoy, which calls us
  }
}

/** Boot LoyJoy if its loader has run and nothing booted it yet: true once booted. */
function boot() {
  if (templateStorage.getItem('booted')) return true;
  if (getType(copyFromWindow('LoyJoy')) !== 'function') return false;
  templateStorage.setItem('booted', true);
  const options = loyjoyOptions();
  options.eventListeners = [listener];
  callInWindow('LoyJoy', 'boot', options);
  finish(true);
  return true;
}

function onAnyLoad() {
  boot(); // a script's load event: LoyJoy's loader may have been it, whoever added it
}

function loadLoyJoy() {
  const url = text(data.loyjoyLoaderUrl) || LOYJOY_LOADER;
  if (!queryPermission('inject_script', url)) {
    log('this tag may not load ' + url + ' (see its inject_script permission); the chat boots once the page loads LoyJoy');
    return finish(false);
  }
  injectScript(
    url,
    function () {
      if (boot()) return;
      log(url + ' loaded but defined no LoyJoy function');
      finish(false);
    },
    function () {
      log(url + ' did not load; the chat boots once another script defines LoyJoy');
      finish(false);
    },
    'loyjoy-loader'
  );
}

// ------------------------------------------------------------------------------------- the collector

function collectorReady() {
  templateStorage.setItem('ready', true);
  tellConsent(templateStorage.getItem('consent'));
}

function retryCollector(why) {
  attempts++;
  const delay = Math.min(30000, 500 * Math.pow(2, attempts));
  log(scriptUrl + ' ' + why + '; next try in ' + delay + ' ms (the chat does not wait for it)');
  later(loadCollector, delay);
}

/** The collector's script, in the background and again with backoff while it fails to arrive or to start. */
function loadCollector() {
  if (copyFromWindow('LoyJoyCollector.version')) return collectorReady();
  if (!queryPermission('inject_script', scriptUrl)) return log('this tag may not load ' + scriptUrl);
  const retry = scriptUrl + '?r=' + attempts; // past a cached broken deploy, where the permission allows it
  const url = attempts && queryPermission('inject_script', retry) ? retry : scriptUrl;
  injectScript(
    url,
    function () {
      if (copyFromWindow('LoyJoyCollector.version')) collectorReady();
      else retryCollector('loaded but did not start');
    },
    function () {
      retryCollector('did not load');
    }
  );
}

// --------------------------------------------------------------------- what a page left behind holds

/** Storage is allowed: no consent needed, or the visitor granted it. */
function storageAllowed() {
  return data.consent === 'none' || templateStorage.getItem('consent') === true;
}

/** Add (sign 1) or take back (-1) what the queue holds to the lost record the script reports later. */
function countLost(sign) {
  let saved = JSON.parse(localStorage.getItem(LOST) || '{}');
  if (getType(saved) !== 'object') saved = {};
  saved.quota = Math.max(0, (saved.quota || 0) + sign * (copyFromWindow(QUEUE + '.length') || 0));
  saved.overflow = Math.max(0, (saved.overflow || 0) + sign * (copyFromWindow(OVERFLOW) || 0));
  if (saved.quota || saved.overflow) localStorage.setItem(LOST, JSON.stringify(saved));
  else localStorage.removeItem(LOST);
}

function onPageHide() {
  if (copyFromWindow('LoyJoyCollector.version') || !storageAllowed()) return; // the script keeps its own queue
  if (!copyFromWindow(QUEUE + '.length') && !copyFromWindow(OVERFLOW)) return;
  countLost(1);
  templateStorage.setItem('counted', true);
}

function onPageShow() {
  if (!templateStorage.getItem('counted')) return; // back from the back-forward cache: its events live on
  countLost(-1);
  templateStorage.setItem('counted', false);
}

// ------------------------------------------------------------------------------------------ firing

function firstFiring() {
  templateStorage.setItem('fired', true);
  templateStorage.setItem('consent', consentNow());
  if (!setInWindow('LoyJoyCollector', { stub: { o: snippetOptions(loyjoy), q: [], d: 0 } }, false)) {
    log('LoyJoyCollector is on this page already (the inline stub or the script): the tag leaves the chat to it');
    return data.gtmOnSuccess();
  }
  later(function () {
    finish(true);
  }, SIGNAL_WITHIN_MS);
  if (data.dataLayer !== false) pushToDataLayer = createQueue(dataLayerName);
  if (data.consent === 'consentMode') {
    addConsentListener('analytics_storage', function (consentType, granted) {
      rememberConsent(granted === true);
    });
  }
  callInWindow('addEventListener', 'pagehide', onPageHide);
  callInWindow('addEventListener', 'pageshow', onPageShow);
  if (!boot()) {
    callInWindow('addEventListener', 'load', onAnyLoad, true);
    if (data.loadLoyJoy !== false) loadLoyJoy();
  }
  // After the page's load event: a collector that hangs never holds the page's load up.
  if (copyFromWindow('document.readyState') === 'complete') loadCollector();
  else callInWindow('addEventListener', 'load', loadCollector);
}

if (!base) {
  log('the collector URL must be an https:// URL, for example https://collector.example.com');
  data.gtmOnFailure();
} else if (!loyjoy.bot && !loyjoy.process) {
  log('a LoyJoy bot id or process id is needed');
  data.gtmOnFailure();
} else if (templateStorage.getItem('fired')) {
  // Fired again (a consent or page event): only the visitor's choice can have changed.
  if (data.consent === 'variable') rememberConsent(consentNow());
  data.gtmOnSuccess();
} else {
  firstFiring();
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
              },
              {
                "type": 1,
                "string": "https://*.loyjoy.com/*"
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
                    "string": "LoyJoyCollector"
                  },
                  {
                    "type": 8,
                    "boolean": false
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
                    "string": "LoyJoyCollector.stub.q.length"
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
                    "string": "LoyJoyCollector.stub.q.push"
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
                    "string": "LoyJoyCollector.stub.d"
                  },
                  {
                    "type": 8,
                    "boolean": true
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
                    "string": "LoyJoy"
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
                    "string": "dataLayer"
                  },
                  {
                    "type": 8,
                    "boolean": true
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
                    "string": "setTimeout"
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
                    "string": "addEventListener"
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
                    "string": "document.readyState"
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
        "publicId": "access_local_storage",
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
                  }
                ],
                "mapValue": [
                  {
                    "type": 1,
                    "string": "ljc:lost"
                  },
                  {
                    "type": 8,
                    "boolean": true
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
- name: Loads LoyJoy's loader and boots the chat the moment it has run, before any collector
  code: |-
    runCode(mockData);
    assertThat(injected.length).isEqualTo(1);
    assertThat([injected[0][0], injected[0][3]]).isEqualTo(['https://stable.loyjoy.com/widget.js', 'loyjoy-loader']);
    assertThat(booted.length).isEqualTo(0);
    loyjoyArrives();
    succeed(0);
    assertThat(booted.length).isEqualTo(1);
    assertThat(booted[0].bot).isEqualTo('bot-1');
    assertThat(booted[0].eventListeners.length).isEqualTo(1);
    assertApi('gtmOnSuccess').wasCalled();
    assertThat(injected.length).isEqualTo(1);
- name: The page's loader ran first, the chat boots at once
  code: |-
    loyjoyArrives();
    runCode(mockData);
    assertThat(booted.length).isEqualTo(1);
    assertThat(injected.length).isEqualTo(0);
    assertApi('gtmOnSuccess').wasCalled();
- name: Loading switched off, the page's loader arriving later boots the chat on its load event
  code: |-
    mockData.loadLoyJoy = false;
    runCode(mockData);
    assertThat(injected.length).isEqualTo(0);
    dispatch('load', true);
    assertThat(booted.length).isEqualTo(0);
    loyjoyArrives();
    dispatch('load', true);
    dispatch('load', true);
    assertThat(booted.length).isEqualTo(1);
- name: Fired again, boots once and loads each script once
  code: |-
    loyjoyArrives();
    runCode(mockData);
    runCode(mockData);
    assertThat(booted.length).isEqualTo(1);
    dispatch('load', false);
    assertThat(injected.length).isEqualTo(1);
    assertApi('gtmOnFailure').wasNotCalled();
- name: The inline stub already on the page, the tag leaves the chat to it
  code: |-
    win.LoyJoyCollector = {stub: {q: []}};
    loyjoyArrives();
    runCode(mockData);
    assertThat(booted.length).isEqualTo(0);
    assertThat(injected.length).isEqualTo(0);
    assertApi('gtmOnSuccess').wasCalled();
- name: Signals success within 2 seconds whatever LoyJoy's loader and the collector do
  code: |-
    runCode(mockData);
    advance(1499);
    assertApi('gtmOnSuccess').wasNotCalled();
    advance(1);
    assertApi('gtmOnSuccess').wasCalled();
    assertThat(booted.length).isEqualTo(0);
- name: LoyJoy's loader failing fails the tag; a loader that came otherwise still boots the chat
  code: |-
    runCode(mockData);
    failToLoad(0);
    assertApi('gtmOnFailure').wasCalled();
    loyjoyArrives();
    dispatch('load', true);
    assertThat(booted.length).isEqualTo(1);
- name: Every chat event makes the seed's dataLayer push, then goes into the queue
  code: |-
    loyjoyArrives();
    runCode(mockData);
    emit('open', {process_name: 'Test-Name', bot_id: 'bot-1'});
    emit('show', undefined);
    assertThat(pushed).isEqualTo([
      {event: 'loyjoy', gaEventCategory: 'loyjoy', gaEventAction: 'Test-Name', gaEventLabel: 'open'},
      {event: 'loyjoy', gaEventCategory: 'loyjoy', gaEventAction: undefined, gaEventLabel: 'show'}
    ]);
    assertThat(queue.length).isEqualTo(2);
    assertThat([queue[0][0], queue[0][1], queue[1][0]]).isEqualTo(['open', {process_name: 'Test-Name', bot_id: 'bot-1'}, 'show']);
    assertThat(queue[0][2]).isNumber();
- name: The dataLayer push can be switched off; the queue still fills
  code: |-
    mockData.dataLayer = false;
    loyjoyArrives();
    runCode(mockData);
    emit('open', {});
    assertThat(pushed.length).isEqualTo(0);
    assertThat(queue.length).isEqualTo(1);
    assertApi('createQueue').wasNotCalled();
- name: The queue holds 500 events, and counts those past its bound
  code: |-
    loyjoyArrives();
    runCode(mockData);
    for (let i = 0; i < 500; i++) emit('open', {});
    emit('close', {});
    emit('close', {});
    assertThat(queue.length).isEqualTo(500);
    assertThat(win['LoyJoyCollector.stub.d']).isEqualTo(2);
    assertThat(pushed.length).isEqualTo(502);
- name: The collector's script loads after the page's load event, and again with backoff while it fails
  code: |-
    loyjoyArrives();
    runCode(mockData);
    assertThat(injected.length).isEqualTo(0);
    dispatch('load', false);
    assertThat(injected[0][0]).isEqualTo('https://collector.example.com/loyjoy-collector.js');
    failToLoad(0);
    advance(999);
    assertThat(injected.length).isEqualTo(1);
    advance(1);
    assertThat(injected[1][0]).isEqualTo('https://collector.example.com/loyjoy-collector.js?r=1');
    succeed(1);
    advance(2000);
    assertThat(injected[2][0]).isEqualTo('https://collector.example.com/loyjoy-collector.js?r=2');
    win['LoyJoyCollector.version'] = '0.1.0';
    succeed(2);
    advance(60000);
    assertThat(injected.length).isEqualTo(3);
    assertThat(storage.ready).isTrue();
- name: The page already loaded, the collector's script is injected at once
  code: |-
    win['document.readyState'] = 'complete';
    runCode(mockData);
    assertThat(injected[1][0]).isEqualTo('https://collector.example.com/loyjoy-collector.js');
- name: The script reads its options from the queue, numbers as numbers
  code: |-
    mockData.tenant = 't-1';
    mockData.locale = 'de';
    mockData.dataLayerName = 'dataLayer';
    mockData.gaMeasurementId = 'G-ABC123';
    mockData.batchSize = '5';
    mockData.flushInterval = '250';
    mockData.maxQueue = '';
    mockData.maxBackoff = 'soon';
    runCode(mockData);
    assertThat(win.LoyJoyCollector.stub.o).isEqualTo({
      loyjoy: {bot: 'bot-1', tenant: 't-1', locale: 'de'},
      consent: null,
      dataLayerName: 'dataLayer',
      gaMeasurementId: 'G-ABC123',
      batchSize: 5,
      flushInterval: 250
    });
    assertThat(win.LoyJoyCollector.stub.q).isEqualTo([]);
- name: A trailing slash or the script's own URL is the same collector
  code: |-
    mockData.collectorUrl = ' https://collector.example.com/loyjoy-collector.js ';
    win['document.readyState'] = 'complete';
    runCode(mockData);
    assertThat(injected[1][0]).isEqualTo('https://collector.example.com/loyjoy-collector.js');
- name: Refuses a collector URL that is not https
  code: |-
    mockData.collectorUrl = 'http://collector.example.com';
    runCode(mockData);
    assertApi('injectScript').wasNotCalled();
    assertApi('gtmOnFailure').wasCalled();
    assertApi('gtmOnSuccess').wasNotCalled();
- name: Needs a bot id or a process id; a process id alone boots LoyJoy
  code: |-
    mockData.bot = '';
    runCode(mockData);
    assertApi('injectScript').wasNotCalled();
    assertApi('gtmOnFailure').wasCalled();
    mockData.process = ' p-1 ';
    loyjoyArrives();
    runCode(mockData);
    assertThat(booted[0].process).isEqualTo('p-1');
    assertThat(booted[0].bot).isUndefined();
- name: Consent Mode already granted is passed on once the script runs
  code: |-
    mockData.consent = 'consentMode';
    mock('isConsentGranted', function (type) { return type === 'analytics_storage'; });
    runCode(mockData);
    assertThat(win.LoyJoyCollector.stub.o.consent).isEqualTo('explicit');
    scriptArrives();
    assertThat(told).isEqualTo([true]);
- name: Consent Mode not yet granted waits, then follows the visitor's choice
  code: |-
    mockData.consent = 'consentMode';
    let consentListener;
    mock('isConsentGranted', function () { return false; });
    mock('addConsentListener', function (type, fn) { assertThat(type).isEqualTo('analytics_storage'); consentListener = fn; });
    runCode(mockData);
    scriptArrives();
    assertThat(told).isEqualTo([]);
    consentListener('analytics_storage', true);
    consentListener('analytics_storage', false);
    assertThat(told).isEqualTo([true, false]);
- name: A choice made before the script arrived is passed on when it does
  code: |-
    mockData.consent = 'consentMode';
    let consentListener;
    mock('isConsentGranted', function () { return false; });
    mock('addConsentListener', function (type, fn) { consentListener = fn; });
    runCode(mockData);
    consentListener('analytics_storage', true);
    assertThat(told).isEqualTo([]);
    scriptArrives();
    assertThat(told).isEqualTo([true]);
- name: A consent variable is read on every firing
  code: |-
    mockData.consent = 'variable';
    mockData.consentVariable = 'pending';
    runCode(mockData);
    scriptArrives();
    mockData.consentVariable = 'granted';
    runCode(mockData);
    mockData.consentVariable = false;
    runCode(mockData);
    assertThat(told).isEqualTo([true, false]);
    assertApi('isConsentGranted').wasNotCalled();
- name: A page left before the script arrived counts what it held, for a later page to report
  code: |-
    const JSON = require('JSON');
    loyjoyArrives();
    runCode(mockData);
    emit('open', {});
    emit('close', {});
    dispatch('pagehide', false);
    assertThat(JSON.parse(local['ljc:lost'])).isEqualTo({quota: 2, overflow: 0});
    dispatch('pageshow', false);
    assertThat(local['ljc:lost']).isUndefined();
- name: Nothing is stored for a page left before consent was granted, nor once the script runs
  code: |-
    mockData.consent = 'consentMode';
    mock('isConsentGranted', function () { return false; });
    loyjoyArrives();
    runCode(mockData);
    emit('open', {});
    dispatch('pagehide', false);
    assertThat(local).isEqualTo({});
    mock('isConsentGranted', function () { return true; });
    storage = {};
    win = {};
    loyjoyArrives();
    runCode(mockData);
    scriptArrives();
    dispatch('pagehide', false);
    assertApi('localStorage.setItem').wasNotCalled();
setup: |-
  const mockData = {
    collectorUrl: 'https://collector.example.com',
    bot: 'bot-1',
    consent: 'none',
    dataLayer: true,
    loadLoyJoy: true,
    loyjoyLoaderUrl: 'https://stable.loyjoy.com/widget.js'
  };
  // A page as the window APIs reach it, and a clock only the tests move.
  let win = {};
  let listeners = [];
  let timers = [];
  let now = 0;
  let injected = [];
  let booted = [];
  let queue = [];
  let told = [];
  let pushed = [];
  let storage = {};
  let local = {};
  mock('copyFromWindow', function (key) {
    if (key === 'LoyJoyCollector.stub.q.length') return queue.length;
    return win[key];
  });
  mock('setInWindow', function (key, value, overrideExisting) {
    if (win[key] !== undefined && !overrideExisting) return false;
    win[key] = value;
    if (key === 'LoyJoyCollector') win['LoyJoyCollector.stub.d'] = value.stub.d;
    return true;
  });
  mock('callInWindow', function (path, a, b, c) {
    if (path === 'setTimeout') timers.push([now + b, a]);
    else if (path === 'addEventListener') listeners.push([a, b, c === true]);
    else if (path === 'LoyJoy') booted.push(b);
    else if (path === 'LoyJoyCollector.stub.q.push') queue.push(a);
    else if (path === 'LoyJoyCollector.consent') told.push(a);
    else fail('an unexpected window call: ' + path);
  });
  mock('createQueue', function (key) {
    assertThat(key).isEqualTo('dataLayer');
    return function (value) { pushed.push(value); };
  });
  mock('injectScript', function (url, onSuccess, onFailure, cacheToken) {
    injected.push([url, onSuccess, onFailure, cacheToken]);
  });
  mockObject('templateStorage', {
    getItem: function (key) { return storage[key]; },
    setItem: function (key, value) { storage[key] = value; },
    removeItem: function (key) { storage[key] = undefined; },
    clear: function () { storage = {}; }
  });
  mockObject('localStorage', {
    getItem: function (key) { return local[key] === undefined ? null : local[key]; },
    setItem: function (key, value) { local[key] = value; return true; },
    removeItem: function (key) { local[key] = undefined; }
  });
  function loyjoyArrives() {
    win.LoyJoy = function () {};
  }
  function advance(ms) {
    now = now + ms;
    const due = timers.filter(function (t) { return t[0] <= now; });
    timers = timers.filter(function (t) { return t[0] > now; });
    due.forEach(function (t) { call(t[1]); });
  }
  function dispatch(type, capture) {
    listeners.filter(function (l) { return l[0] === type && l[2] === capture; }).forEach(function (l) { call(l[1]); });
  }
  function call(fn) {
    fn();
  }
  function succeed(i) {
    call(injected[i][1]);
  }
  function failToLoad(i) {
    call(injected[i][2]);
  }
  function emit(evt, obj) {
    const listener = booted[0].eventListeners[0];
    listener(evt, obj);
  }
  function scriptArrives() {
    dispatch('load', false);
    win['LoyJoyCollector.version'] = '0.1.0';
    succeed(injected.length - 1);
  }


___NOTES___

Boots the LoyJoy chat itself (loading LoyJoy's loader, https://stable.loyjoy.com/widget.js by default, unless
switched off) the moment window.LoyJoy exists, once per page, and signals GTM within 1.5 s whatever LoyJoy's CDN
or the collector do. Every chat event makes LoyJoy's classic dataLayer push and goes into the page's queue
(window.LoyJoyCollector.stub: the same queue the inline stub fills, documented in docs/install.md, "The queue
contract"); the collector's script loads after the page's load event, in the background, with retries and
backoff, and takes the queue over when it arrives. Nothing is sent or stored before Consent Mode or the consent
variable allows it.
Permissions: injects https://<host>/loyjoy-collector.js (or one path below) and LoyJoy's loader from
https://*.loyjoy.com/; creates and feeds the queue (LoyJoyCollector, LoyJoyCollector.stub.q.length/.push/.d),
reads LoyJoyCollector.version, calls LoyJoyCollector.consent and LoyJoy; pushes to dataLayer; uses the page's
setTimeout (backoff, the 1.5 s signal), addEventListener (script and page load, pagehide/pageshow) and
document.readyState; reads analytics_storage; keeps one count in localStorage (ljc:lost: what a page left before
the script arrived held, where storage is allowed); logs in preview mode only; shares flags between firings in
templateStorage.
These tests run offline in the repository's harness (tests/test_gtm_template.py) as well as in GTM.
