"""The snippet in a real Chromium, against the real collector and the local BigQuery."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from loyjoy_collector.ops.cli import local_env, wait_for

from .conftest import PAGE_PORT, LocalBigQuery, free_port, start_collector, stop

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
PAGE = f"http://127.0.0.1:{PAGE_PORT}/test/page.html"
# LoyJoy's own GTM listener, verbatim (the dataLayer push of docs/protocols.md), writing into a layer of its own.
SEED_LISTENER = """function (evt, obj) {
    dataLayer && dataLayer.push({ 'event': 'loyjoy', 'gaEventCategory': 'loyjoy', 'gaEventAction': obj && obj.process_name, 'gaEventLabel': evt })
  }"""
CHAT = """() => {
  const chat = LoyJoy.standin.chat;
  LoyJoy('open'); chat.start(); chat.message('Hello, my mail is jane@example.com'); chat.signUp('jane@example.com');
  chat.optIn(); LoyJoy('close');
}"""
CHAT_EVENTS = [
    "load",
    "show",
    "open",
    "session_started",
    "start",
    "message_received",
    "sign_up",
    "newsletter_single_opt_in",
    "close",
]


@pytest.fixture(scope="session")
def demo_page(collector) -> Iterator[str]:
    """The dev command's page server, on the origin the collector allows."""
    env = local_env(0, "")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loyjoy_collector.ops.devserver",
            "--port",
            str(PAGE_PORT),
            "--collector",
            collector.url,
        ],
        env=env,
    )
    wait_for(f"http://127.0.0.1:{PAGE_PORT}/test/page.html", 15, process)
    try:
        yield PAGE
    finally:
        stop(process)


class Watched:
    """A page with its console errors, page errors and requests to the collector recorded."""

    def __init__(self, context: BrowserContext, collector_url: str) -> None:
        self.page: Page = context.new_page()
        self.errors: list[str] = []
        self.sent: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.sent.append(r.url) if r.url.startswith(collector_url) else None)

    def boot(self, **options: object) -> None:
        self.page.evaluate("options => LoyJoyCollector.boot(options)", options)

    def drained(self, timeout: float = 15_000) -> None:
        self.page.wait_for_function("() => LoyJoyCollector.pending() === 0", timeout=timeout)

    def csp_violations(self) -> list[str]:
        return self.page.evaluate("() => window.cspViolations")


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context()
    yield ctx
    ctx.close()


@pytest.fixture
def tab(context, demo_page, collector) -> Watched:
    watched = Watched(context, collector.url)
    watched.page.goto(demo_page)
    return watched


def wait_rows(local_bigquery: LocalBigQuery, tag: str, count: int, timeout: float = 15) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = local_bigquery.events("bot_id = @tag", tag=tag)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


def test_a_whole_chat_lands_exactly_once(tab, collector, local_bigquery, tag):
    tab.boot(collector=collector.url + "/", loyjoy={"bot": tag})
    tab.page.evaluate(CHAT)
    tab.drained()
    rows = wait_rows(local_bigquery, tag, len(CHAT_EVENTS))
    assert sorted(r["event_name"] for r in rows) == sorted(CHAT_EVENTS)
    assert len({r["event_id"] for r in rows}) == len(rows) == len(CHAT_EVENTS)
    assert len({r["client_id"] for r in rows}) == 1 and len({r["session_id"] for r in rows}) == 1
    sign_up = next(r for r in rows if r["event_name"] == "sign_up")
    assert sign_up["email_hash"] is None  # the browser drops the address; it cannot hash it with a secret
    assert "token" not in sign_up["detail"] and "firstname" not in sign_up["detail"]
    assert all(r["sdk"] == "loyjoy-snippet/0.1.0" for r in rows)
    # The collector cleans IP literals out of URLs (personal data); the test page is served from 127.0.0.1.
    assert rows[0]["page_location"] == PAGE.replace("127.0.0.1", "[ip]")
    assert rows[0]["page_title"] == "Snippet test page"
    everything = json.dumps(rows, default=str)
    assert "jane@example.com" not in everything and "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" not in everything
    assert tab.errors == [] and tab.csp_violations() == []


def test_datalayer_pushes_are_byte_identical_to_the_seed(tab, collector):
    tab.page.evaluate(
        f"() => {{ window.seedLayer = []; window.seedListener = (function (dataLayer) {{ return {SEED_LISTENER}; }})(window.seedLayer); }}"
    )
    tab.boot(collector=collector.url + "/", loyjoy={"bot": "seed-compare", "eventListeners": []})
    fired = tab.page.evaluate("""() => {
      const cases = [['open', {process_name: 'Test-Name', bot_id: 'x'}], ['show', undefined], ['hide', null],
                     ['signin', {email: 'a@b.co'}], ['close', {process_name: ''}]];
      for (const [evt, obj] of cases) { seedListener(evt, obj); LoyJoy.standin.emit(evt, obj); }
      const show = v => JSON.stringify(v, (k, x) => x === undefined ? '<undefined>' : x);
      const ours = dataLayer.filter(e => e.event === 'loyjoy').slice(-cases.length);
      return {seed: seedLayer.map(show), ours: ours.map(show), keys: ours.map(e => Object.keys(e).join(','))};
    }""")
    assert fired["ours"] == fired["seed"]
    assert set(fired["keys"]) == {"event,gaEventCategory,gaEventAction,gaEventLabel"}
    assert tab.errors == []


def test_the_snippet_served_by_the_collector_needs_only_its_url(context, demo_page, collector, local_bigquery, tag):
    watched = Watched(context, collector.url)
    watched.page.goto(demo_page.replace("page.html", "served.html"))
    watched.page.add_script_tag(url=collector.url + "/loyjoy-collector.js")
    watched.page.evaluate("bot => LoyJoyCollector.boot({loyjoy: {bot}})", tag)  # no collector option
    watched.page.evaluate("() => LoyJoy('open')")
    watched.drained()
    assert sorted(r["event_name"] for r in wait_rows(local_bigquery, tag, 3)) == ["load", "open", "show"]
    assert watched.errors == [] and watched.csp_violations() == []


def test_one_async_script_tag_with_data_attributes_boots_everything(context, demo_page, collector, local_bigquery, tag):
    watched = Watched(context, collector.url)
    watched.page.goto(demo_page.replace("page.html", "served.html"))
    watched.page.evaluate(
        """([src, bot]) => { const s = document.createElement('script'); s.async = true; s.src = src;
           s.setAttribute('data-bot', bot); s.setAttribute('data-process', 'p-attr'); document.head.appendChild(s); }""",
        [collector.url + "/loyjoy-collector.js", tag],
    )
    watched.page.wait_for_function("() => window.LoyJoyCollector && LoyJoyCollector.version")
    watched.page.evaluate("() => LoyJoy('open')")
    watched.drained()
    rows = wait_rows(local_bigquery, tag, 3)
    assert sorted(r["event_name"] for r in rows) == ["load", "open", "show"]
    assert {r["process_id"] for r in rows} == {"p-attr"}
    assert watched.errors == []


def test_the_sites_own_listeners_still_run_in_both_forms(context, demo_page, collector, local_bigquery, tag):
    for form in ("array", "map"):
        watched = Watched(context, collector.url)
        watched.page.goto(demo_page)
        watched.page.evaluate(
            """([form, collector, bot]) => {
              window.own = [];
              const listeners = form === 'array'
                ? [function (evt, obj) { window.own.push(['all', evt, obj && obj.process_name]); }]
                : {open: [function (obj) { window.own.push(['open', obj.process_name]); }],
                   close: [function (obj) { throw new Error('a broken site listener'); }]};
              LoyJoyCollector.boot({collector, loyjoy: {bot, eventListeners: listeners}});
              LoyJoy('open'); LoyJoy('close');
            }""",
            [form, collector.url + "/", f"{tag}-{form}"],
        )
        watched.drained()
        own = watched.page.evaluate("() => window.own")
        if form == "array":
            assert ["all", "open", "Newsletter sign-up"] in own and ["all", "load", "Newsletter sign-up"] in own
        else:
            assert own == [["open", "Newsletter sign-up"]]
        names = sorted(r["event_name"] for r in wait_rows(local_bigquery, f"{tag}-{form}", 4))
        assert names == ["close", "load", "open", "show"]
        assert watched.errors == []


def test_listener_alone_for_sites_that_boot_loyjoy_themselves(tab, collector, local_bigquery, tag):
    tab.page.evaluate(
        """([collector, bot]) => {
          const listener = LoyJoyCollector.listener({collector});
          LoyJoy('boot', {bot, eventListeners: [listener]});
          LoyJoy('open');
        }""",
        [collector.url + "/", tag],
    )
    tab.drained()
    assert sorted(r["event_name"] for r in wait_rows(local_bigquery, tag, 3)) == ["load", "open", "show"]


def test_nothing_is_lost_when_the_page_navigates_away_mid_batch(tab, collector, local_bigquery, tag):
    tab.boot(collector=collector.url + "/", flushInterval=60_000, loyjoy={"bot": tag})
    tab.page.evaluate(CHAT)
    assert tab.page.evaluate("() => LoyJoyCollector.pending()") == len(CHAT_EVENTS)
    tab.page.goto("about:blank")  # pagehide: the queue leaves by sendBeacon
    rows = wait_rows(local_bigquery, tag, len(CHAT_EVENTS))
    assert sorted(r["event_name"] for r in rows) == sorted(CHAT_EVENTS)
    time.sleep(1)
    assert len(local_bigquery.events("bot_id = @tag", tag=tag)) == len(CHAT_EVENTS)  # exactly once


def test_events_queue_while_the_collector_is_down_and_survive_a_reload(context, demo_page, local_bigquery, tag):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    watched = Watched(context, url)
    watched.page.goto(demo_page)
    options = {"collector": url + "/", "maxBackoff": 1000, "loyjoy": {"bot": tag}}
    watched.boot(**options)
    watched.page.evaluate("() => LoyJoy('open')")
    deadline = time.monotonic() + 10
    while len(watched.sent) < 2 and time.monotonic() < deadline:
        watched.page.wait_for_timeout(200)
    assert len(watched.sent) >= 2  # it kept trying
    assert watched.page.evaluate("() => LoyJoyCollector.pending()") == 3
    watched.page.reload()  # the queue is in localStorage: the reloaded page takes it over
    watched.boot(**options)
    watched.page.wait_for_timeout(500)
    assert watched.page.evaluate("() => LoyJoyCollector.pending()") == 3 + 2  # the load and show of the reload
    collector = start_collector(local_bigquery.url, "collector-comes-back", port=port)
    try:
        watched.drained(timeout=20_000)
        rows = wait_rows(local_bigquery, tag, 5)
        assert sorted(r["event_name"] for r in rows) == ["load", "load", "open", "show", "show"]
        assert len({r["event_id"] for r in rows}) == 5
    finally:
        stop(collector.process)
    assert [e for e in watched.errors if "ERR_CONNECTION_REFUSED" not in e] == []


def test_nothing_is_sent_or_stored_before_consent_then_everything_is(tab, collector, local_bigquery, tag):
    tab.page.evaluate("() => { window.__consent = undefined; }")
    tab.page.evaluate(
        "([collector, bot]) => LoyJoyCollector.boot({collector, consent: () => window.__consent, loyjoy: {bot}})",
        [collector.url + "/", tag],
    )
    tab.page.evaluate(CHAT)
    tab.page.wait_for_timeout(2500)
    assert tab.sent == []
    assert tab.page.evaluate("() => Object.keys(localStorage).filter(k => k.startsWith('ljc:'))") == []
    assert tab.page.context.cookies() == []
    assert local_bigquery.events("bot_id = @tag", tag=tag) == []
    tab.page.evaluate("() => { window.__consent = true; }")
    tab.drained()
    rows = wait_rows(local_bigquery, tag, len(CHAT_EVENTS))
    assert len(rows) == len(CHAT_EVENTS)
    assert {r["consent_analytics"] for r in rows} == {"granted"}
    assert tab.page.context.cookies() == []  # no cookies, ever: ids live in localStorage after consent


def test_google_consent_mode_denied_sends_nothing(tab, collector, local_bigquery, tag):
    tab.page.evaluate(
        "() => { function gtag(){dataLayer.push(arguments);} gtag('consent', 'default', {analytics_storage: 'denied'}); }"
    )
    tab.boot(collector=collector.url + "/", consent="consent-mode", loyjoy={"bot": tag})
    tab.page.evaluate(CHAT)
    tab.page.wait_for_timeout(2000)
    assert tab.sent == [] and tab.page.evaluate("() => LoyJoyCollector.pending()") == 0
    tab.page.evaluate(
        "() => { function gtag(){dataLayer.push(arguments);} gtag('consent', 'update', {analytics_storage: 'granted'}); }"
    )
    tab.page.evaluate("() => LoyJoy('close')")
    tab.drained()
    assert [r["event_name"] for r in wait_rows(local_bigquery, tag, 1)] == ["close"]


def test_two_tabs_never_send_the_same_event_twice(context, demo_page, collector, local_bigquery, tag):
    tabs = [Watched(context, collector.url) for _ in range(2)]
    for index, watched in enumerate(tabs):
        watched.page.goto(demo_page)
        watched.boot(collector=collector.url + "/", loyjoy={"bot": tag, "process": f"tab-{index}"})
    for watched in tabs:
        watched.page.evaluate(CHAT)
    for watched in tabs:
        watched.drained()
    rows = wait_rows(local_bigquery, tag, 2 * len(CHAT_EVENTS))
    time.sleep(1)
    rows = local_bigquery.events("bot_id = @tag", tag=tag)
    assert len(rows) == 2 * len(CHAT_EVENTS) == len({r["event_id"] for r in rows})


def test_ga4_ids_and_campaign_come_along(context, demo_page, collector, local_bigquery, tag):
    context.add_cookies(
        [
            {"name": "_ga", "value": "GA1.1.1234567890.1700000000", "url": demo_page},
            {"name": "_ga_ABC123", "value": "GS2.1.s1732440000$o3$g1$t1732440100$j0$l0$h0", "url": demo_page},
        ]
    )
    watched = Watched(context, collector.url)
    watched.page.goto(demo_page + "?utm_source=newsletter&utm_medium=email&utm_campaign=black-friday")
    watched.boot(collector=collector.url + "/", loyjoy={"bot": tag})
    watched.drained()
    [load, _show] = sorted(wait_rows(local_bigquery, tag, 2), key=lambda r: r["event_name"])
    assert (load["ga_client_id"], load["ga_session_id"]) == ("1234567890.1700000000", 1732440000)
    assert (load["utm_source"], load["utm_medium"], load["utm_campaign"]) == ("newsletter", "email", "black-friday")


@pytest.fixture
def source(context, demo_page, collector) -> Watched:
    """The snippet's source, unminified: the build drops the helpers and queue it exposes for these tests."""
    watched = Watched(context, collector.url)
    watched.page.goto(demo_page.replace("page.html", "served.html"))
    watched.page.add_script_tag(url=demo_page.replace("test/page.html", "src/loyjoy-collector.js"))
    return watched


def test_pure_helpers(source):
    tab = source
    results = tab.page.evaluate("""() => {
      const _ = LoyJoyCollector._;
      return {
        scrub: _.scrub({token: 'x', email: 'a@b.co', Mail: 'c@d.de', note: 'write a@b.co', nested: [{jwt: 'j', ok: 1}],
                        fn: () => 1, keep: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdef'}, 0),
        ga: [_.gaClientId('GA1.1.1234567890.1700000000'), _.gaClientId('junk'), _.gaClientId(null)],
        gs: [_.gaSessionId('GS1.1.1700000000.3.1.1700000100.0.0.0'), _.gaSessionId('GS2.1.s1732440000$o3$g1'),
             _.gaSessionId('junk')],
        utm: [_.utm('?a=1&utm_source=x+y&utm_campaign=%C3%A9t%C3%A9'), _.utm('?a=1')],
        retry: [_.retryDelay('7', 1, 60000), _.retryDelay(null, 3, 60000), _.retryDelay(null, 30, 60000)],
        forms: [_.withListener(undefined).length, _.withListener([function(){}]).length, _.withListener({open: []}).length],
      };
    }""")
    assert results["scrub"] == {"note": "write [email]", "nested": [{"ok": 1}], "keep": "[jwt]"}
    assert results["ga"] == ["1234567890.1700000000", None, None]
    assert results["gs"] == ["1700000000", "1732440000", None]
    assert results["utm"] == [{"source": "x y", "campaign": "été"}, None]
    assert results["retry"][0] == 7000
    assert 4000 <= results["retry"][1] <= 8000 and 30000 <= results["retry"][2] <= 60000
    assert results["forms"] == [1, 2, 1]


def test_the_queue_is_a_narrow_object_add_take_acknowledge_release_persist_adopt(source):
    """Every event goes through these six calls: their contract, without a collector in the way."""
    result = source.page.evaluate("""() => {
      const q = LoyJoyCollector._.queue;
      const cfg = LoyJoyCollector._.config;
      const ids = xs => xs.map(e => e.event_id);
      cfg.maxQueue = 4;
      const out = {api: Object.keys(q).filter(k => typeof q[k] === 'function').sort()};
      for (const id of ['a', 'b', 'c']) q.add({event_id: id});
      const first = q.take(2), second = q.take(5), none = q.take(5);
      out.taken = [ids(first), ids(second), ids(none)];
      q.release(first);  // the request failed: the batch may go again, in order
      out.again = ids(q.take(5));
      q.acknowledge(second);  // confirmed: gone
      out.left = ids(q.events);
      for (const id of ['d', 'e', 'f', 'g']) q.add({event_id: id});
      out.capped = ids(q.events);  // the oldest go first past maxQueue
      q.clear();
      out.cleared = q.events.length;
      return out;
    }""")
    assert result["api"] == ["acknowledge", "add", "adopt", "clear", "persist", "release", "take"]
    assert result["taken"] == [["a", "b"], ["c"], []]
    assert result["again"] == ["a", "b"]
    assert result["left"] == ["a", "b"]
    assert result["capped"] == ["d", "e", "f", "g"]
    assert result["cleared"] == 0


SHIPPED = ROOT / "functions/loyjoy_collector/static"
ACORN_ES5 = """const acorn = require('acorn'); const fs = require('fs');
for (const file of process.argv.slice(1)) {
  try { acorn.parse(fs.readFileSync(file, 'utf8'), {ecmaVersion: 5, sourceType: 'script'}); }
  catch (e) { console.log(file + ': ' + e.message); process.exitCode = 1; }
}"""


def test_the_shipped_files_parse_as_es5():
    """GTM's Custom HTML compiler and old browsers take ES5 only: a real parser says so, not a regex."""
    files = [
        SHIPPED / "loyjoy-collector.min.js",
        SHIPPED / "loyjoy-collector-stub.min.js",
        ROOT / "snippet/src/stub.js",
    ]
    run = subprocess.run(
        ["node", "-e", ACORN_ES5, *map(str, files)], cwd=ROOT / "snippet", capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    broken = subprocess.run(
        ["node", "-e", ACORN_ES5, "/dev/stdin"], cwd=ROOT / "snippet", input=b"let x = () => 1;", capture_output=True
    )
    assert broken.returncode == 1  # the check can fail


def test_the_shipped_snippet_is_at_most_4_kb_gzipped():
    """Every page of every site downloads it; the inline stub lives in the page and is not counted."""
    size = len(gzip.compress((SHIPPED / "loyjoy-collector.min.js").read_bytes(), compresslevel=9))
    assert size <= 4096, f"{size} bytes gzipped"


def test_the_shipped_build_is_the_source_minified(tmp_path):
    """The collector serves this file to every site: it must be exactly what `npm run build` makes of src/."""
    snippet = ROOT / "snippet"
    build = json.loads((snippet / "package.json").read_text())["scripts"]["build"]
    command = build
    for name in ("loyjoy-collector.min.js", "loyjoy-collector-stub.min.js"):
        command = command.replace(f"../functions/loyjoy_collector/static/{name}", str(tmp_path / name))
    assert command.count(str(tmp_path)) == 2
    env = dict(os.environ, PATH=f"{snippet / 'node_modules' / '.bin'}:{os.environ['PATH']}")
    subprocess.run(command, shell=True, cwd=snippet, env=env, check=True)
    for name in ("loyjoy-collector.min.js", "loyjoy-collector-stub.min.js"):
        shipped = ROOT / "functions/loyjoy_collector/static" / name
        assert (tmp_path / name).read_bytes() == shipped.read_bytes(), "run: npm run build"


def test_ids_are_version_4_uuids_without_random_uuid_too(source):
    """randomUUID exists in secure contexts only: on a plain-http site the fallback makes the event ids."""
    result = source.page.evaluate("""() => {
      const make = n => Array.from({length: n}, () => LoyJoyCollector._.uuid());
      const native = make(200);
      const crypto = window.crypto, randomUUID = crypto.randomUUID;
      crypto.randomUUID = undefined;  // as on http://
      const fallback = make(2000);
      Object.defineProperty(window, 'crypto', {value: undefined, configurable: true});  // no crypto at all
      const bare = make(2000);
      Object.defineProperty(window, 'crypto', {value: crypto, configurable: true});
      crypto.randomUUID = randomUUID;
      return {native, fallback, bare};
    }""")
    v4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    for name, ids in result.items():
        assert all(v4.match(i) for i in ids), name
        assert len(set(ids)) == len(ids), name
    # Every random digit takes every value: no position is stuck.
    for ids in (result["fallback"], result["bare"]):
        for position in [0, 7, 9, 15, 20, 21, 35]:
            digits = {i[position] for i in ids}
            assert len(digits) == 16, position
        assert {i[19] for i in ids} == set("89ab")


def test_the_scrubber_drops_every_secret_key_and_keeps_the_rest(source):
    result = source.page.evaluate("""() => {
      const secret = ['token', 'TOKEN', 'jwt', 'id_token', 'idtoken', 'access_token', 'accessToken', 'refresh_token',
                      'refreshtoken', 'password', 'secret', 'email', 'e_mail', 'E-Mail', 'mail', 'email_address',
                      'emailAddress'];
      const kept = ['tokens', 'my_token', 'mailbox', 'emails', 'e__mail', 'passwords', 'secret_santa', 'idtokens',
                    'address', 'x_email'];
      const input = {};
      for (const k of secret.concat(kept)) input[k] = 'v';
      return Object.keys(LoyJoyCollector._.scrub(input, 0)).sort();
    }""")
    kept = ["E-Mail", "tokens", "my_token", "mailbox", "emails", "e__mail", "passwords", "secret_santa", "idtokens"]
    assert result == sorted([*kept, "address", "x_email"])
    texts = source.page.evaluate("""() => ['Jane_Doe.x+y@Mail-Host.Example.CO.uk wrote', 'a@b.c', 'not@mail',
      'tok eyJabcde.fghij12.klm_- end', 'eyJabc.defghi.j'].map(t => LoyJoyCollector._.scrub(t, 0))""")
    assert texts == ["[email] wrote", "a@b.c", "not@mail", "tok [jwt] end", "eyJabc.defghi.j"]
