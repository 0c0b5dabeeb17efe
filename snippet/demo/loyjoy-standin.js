/*
 * A local stand-in for LoyJoy's widget API, for the demo page and the browser tests (the real widget loads
 * from LoyJoy's servers, which a laptop offline or CI cannot reach). It honours what the snippet relies on:
 * LoyJoy('boot' | 'open' | 'close' | 'hide' | 'show' | 'remove', options), both eventListeners forms
 * (an array of function (evt, obj) and a map {evt: [function (obj)]}), and the event sequence of a real
 * chat: load, show, open, start, sign_up, opt-ins, close — with the listener object LoyJoy documents.
 */
(function (window, document) {
  'use strict';
  var booted = null;
  var panel = null;
  var bootedAt = null;
  var boots = 0; // every LoyJoy('boot') call, a second one included (the real widget must never get two)

  function detail(extra) {
    var obj = { bot_id: booted.bot, process_id: booted.process || 'process-1', process_name: 'Newsletter sign-up' };
    for (var key in extra || {}) obj[key] = extra[key];
    return obj;
  }

  function emit(evt, obj) {
    if (!booted) return;
    var listeners = booted.eventListeners || [];
    if (Object.prototype.toString.call(listeners) === '[object Array]') {
      for (var i = 0; i < listeners.length; i++) listeners[i](evt, obj);
    } else {
      var own = listeners[evt] || [];
      for (var j = 0; j < own.length; j++) own[j](obj);
    }
  }

  function button(label, onClick) {
    var b = document.createElement('button');
    b.type = 'button';
    b.textContent = label;
    b.addEventListener('click', onClick);
    return b;
  }

  var FAKE_JWT = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJlbWFpbCI6ImRlbW9AZXhhbXBsZS5jb20ifQ.c2lnbmF0dXJl';

  var chat = {
    start: function () { emit('session_started', detail()); emit('start', detail()); },
    signUp: function (email) {
      emit('sign_up', detail({ email: email || 'demo.user@example.com', token: FAKE_JWT, firstname: 'Demo' }));
    },
    optIn: function () { emit('newsletter_single_opt_in', detail({ label: 'Yes, please' })); },
    message: function (text) { emit('message_received', detail({ type: 'text', payload: { text: text } })); },
    click: function (label) { emit('link_clicked', detail({ label: label })); }
  };

  function render() {
    panel = document.createElement('div');
    panel.id = 'loyjoy-standin';
    panel.setAttribute('style', 'position:fixed;right:16px;bottom:16px;padding:12px;background:#fff;border:1px solid #ccc;'
      + 'border-radius:12px;box-shadow:0 4px 16px rgba(0,0,0,.15);font:14px sans-serif;max-width:260px');
    var title = document.createElement('strong');
    title.textContent = 'LoyJoy chat (local stand-in)';
    panel.appendChild(title);
    var body = document.createElement('div');
    body.setAttribute('style', 'display:none;margin-top:8px;gap:6px;flex-direction:column');
    body.appendChild(button('Say hello', function () { chat.start(); chat.message('Hello!'); }));
    body.appendChild(button('Sign up', function () { chat.signUp(); }));
    body.appendChild(button('Yes to the newsletter', function () { chat.optIn(); }));
    body.appendChild(button('Close chat', function () { window.LoyJoy('close'); }));
    panel.appendChild(body);
    var launcher = button('Open chat', function () { window.LoyJoy('open'); });
    launcher.id = 'loyjoy-open';
    panel.appendChild(launcher);
    panel.open = function (yes) { body.style.display = yes ? 'flex' : 'none'; launcher.style.display = yes ? 'none' : ''; };
    document.body.appendChild(panel);
  }

  window.LoyJoy = function (command, options) {
    if (command === 'boot') {
      boots++;
      if (booted) return;
      booted = options || {};
      bootedAt = window.performance ? performance.now() : 0; // for the tests' time-to-boot
      render();
      emit('load', detail());
      if (booted.hide) emit('hide', undefined);
      else emit('show', undefined);
      if (booted.open) window.LoyJoy('open');
    } else if (command === 'open' && booted) {
      panel.open(true);
      emit('open', detail());
    } else if (command === 'close' && booted) {
      panel.open(false);
      emit('close', detail());
    } else if ((command === 'hide' || command === 'show') && booted) {
      panel.style.display = command === 'hide' ? 'none' : '';
      emit(command, undefined);
    } else if (command === 'remove' && booted) {
      panel.remove();
      booted = null;
    }
  };
  // For tests and the demo's "whole chat" button.
  window.LoyJoy.standin = {
    emit: emit,
    chat: chat,
    detail: detail,
    bootedAt: function () {
      return bootedAt;
    },
    boots: function () {
      return boots;
    },
    options: function () {
      return booted;
    }
  };
})(window, document);
