"""The GTM web tag template (gtm/template.tpl), in the offline harness of tests/gtm_sandbox.

The Community Template Gallery and every container that imports the template run it in GTM's sandbox, which
no test here can reach; the harness holds it to what Google documents instead, and these tests also prove the
harness refuses what GTM would refuse (a forbidden construct, a call outside the declared permissions).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Browser, BrowserContext, Page, Route

from . import gtm_sandbox as gtm
from .conftest import PAGE_ORIGIN, Collector, LocalBigQuery

ROOT = Path(__file__).resolve().parent.parent
COLLECTOR = "https://collector.example.com"
SCRIPT = COLLECTOR + "/loyjoy-collector.js"


@pytest.fixture(scope="module")
def template() -> gtm.Template:
    return gtm.load()


def setting(**data: Any) -> dict[str, Any]:
    return {"collectorUrl": COLLECTOR, "bot": "bot-1", **data}


# ------------------------------------------------------------------------------------------ the file


def test_the_template_has_its_sections_and_passes_every_static_check(template: gtm.Template) -> None:
    assert list(template.sections) == list(gtm.SECTIONS)
    assert gtm.check(template) == []
    assert template.info["type"] == "TAG" and template.info["containerContexts"] == ["WEB"]


def test_its_own_tests_pass_in_the_harness(template: gtm.Template) -> None:
    results = gtm.run_tests(template)
    assert len(results) >= 10
    assert [r for r in results if not r["passed"]] == []


def test_the_permissions_are_exactly_what_the_code_uses(template: gtm.Template) -> None:
    """Narrowest that work: each key and URL pattern is one the code needs, read/write/execute as used."""
    permissions = {p["instance"]["key"]["publicId"]: p["instance"]["param"] for p in template.permissions}
    assert set(permissions) == {
        "inject_script",
        "access_globals",
        "access_consent",
        "logging",
        "access_template_storage",
    }
    normalized = json.loads(
        subprocess.run(
            [
                gtm.NODE,
                "-e",
                f"process.stdout.write(JSON.stringify(require({str(gtm.SANDBOX_JS)!r}).normalizePermissions({json.dumps(template.permissions)})))",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert normalized["inject_script"]["urls"] == ["https://*/loyjoy-collector.js", "https://*/*/loyjoy-collector.js"]
    assert normalized["access_globals"]["keys"] == [
        {"key": "LoyJoyCollector.boot", "read": False, "write": False, "execute": True},
        {"key": "LoyJoyCollector.consent", "read": False, "write": False, "execute": True},
        {"key": "LoyJoyCollector.version", "read": True, "write": False, "execute": False},
        {"key": "LoyJoy", "read": False, "write": False, "execute": True},
    ]
    assert normalized["access_consent"]["consentTypes"] == [
        {"consentType": "analytics_storage", "read": True, "write": False}
    ]
    assert normalized["logging"] == {"environments": "debug"}  # never logs on a live site
    for key in normalized["access_globals"]["keys"]:
        assert f"'{key['key']}'" in template.code  # each key is one the code names


def test_the_readme_names_the_permissions_the_template_declares(template: gtm.Template) -> None:
    """A container's admin decides on the install guide's list: it must be the template's, not an older one."""
    readme = (ROOT / "docs" / "install.md").read_text()
    section = readme[readme.index("## Google Tag Manager") :]
    section = section[: section.index("\n## ", 1)]
    declared = json.dumps(template.permissions)
    for name in re.findall(r'"string": "(LoyJoy[\w.]*|https://[^"]+)"', declared):
        assert f"`{name}`" in section, name
    for permission in ("inject_script", "access_globals", "access_consent", "logging", "access_template_storage"):
        assert f"`{permission}`" in section


def test_every_field_the_code_reads_is_declared(template: gtm.Template) -> None:
    answer = gtm.fire(template, [{"fire": setting(consent="variable", consentVariable="true")}], {SCRIPT: "snippet"})
    read = set(answer["dataRead"]) - {"gtmOnSuccess", "gtmOnFailure"}
    assert read <= set(gtm.fields(template.parameters))
    assert {"collectorUrl", "bot", "process", "consent", "consentVariable"} <= read


def test_field_validation_as_the_editor_applies_it(template: gtm.Template) -> None:
    assert gtm.validate(template, setting()) == []
    assert gtm.validate(template, setting(collectorUrl="http://collector.example.com"))
    assert gtm.validate(template, setting(collectorUrl="https://collector.example.com/?x=1"))
    assert gtm.validate(template, setting(batchSize="-1"))
    assert gtm.validate(template, setting(unknown="x")) == ["unknown: no such field"]


def test_metadata_and_license_for_the_gallery(template: gtm.Template) -> None:
    metadata = yaml.safe_load((ROOT / "gtm" / "metadata.yaml").read_text())
    assert metadata["homepage"].startswith("https://") and metadata["documentation"].startswith("https://")
    assert metadata["versions"] and all(re.fullmatch(r"[0-9a-f]{40}", v["sha"]) for v in metadata["versions"])
    assert all(v["changeNotes"].strip() for v in metadata["versions"])
    for version in metadata["versions"]:  # each version is a commit of this repository holding a template
        shown = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{version['sha']}:gtm/template.tpl"], capture_output=True, text=True
        )
        assert shown.returncode == 0, f"{version['sha']} has no gtm/template.tpl"
        gtm.parse(shown.stdout)
    license_text = (ROOT / "gtm" / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text


# ------------------------------------------------------------------------------- flows in Node's page


def test_collector_up_boots_through_the_snippet(template: gtm.Template) -> None:
    answer = gtm.fire(template, [{"fire": setting(consent="none")}], {SCRIPT: "snippet"})
    assert answer["outcomes"][0]["result"] == "success"
    boot = [w for w in answer["window"] if w[0] == "LoyJoyCollector.boot"]
    assert boot == [
        [
            "LoyJoyCollector.boot",
            {
                "collector": COLLECTOR + "/",
                "loyjoy": {"bot": "bot-1"},
                "consent": None,
                "dataLayer": True,
                "dataLayerName": "dataLayer",
            },
        ]
    ]
    assert not [w for w in answer["window"] if w[0] == "LoyJoy"]


@pytest.mark.parametrize(
    "url",
    ["https://loyjoy-collector-abc-ew.a.run.app", "https://shop.example.com/lj/", "https://shop.example.com/a/b/lj"],
)
def test_a_collector_on_any_https_host_or_below_a_path_is_injected(template: gtm.Template, url: str) -> None:
    script = url.rstrip("/") + "/loyjoy-collector.js"
    answer = gtm.fire(template, [{"fire": setting(collectorUrl=url, consent="none")}], {script: "snippet"})
    assert ["script", script] in answer["window"] and answer["outcomes"][0]["result"] == "success"


@pytest.mark.parametrize("kind", ["fail", "broken"])
def test_collector_down_or_broken_the_chat_boots_alone(template: gtm.Template, kind: str) -> None:
    answer = gtm.fire(template, [{"fire": setting(process="p-1")}], {SCRIPT: kind})
    assert answer["outcomes"][0]["result"] == "failure"
    assert [w for w in answer["window"] if w[0] == "LoyJoy"] == [["LoyJoy", "boot", {"bot": "bot-1", "process": "p-1"}]]
    assert any("booting LoyJoy without the collector" in line for line in answer["logs"])


def test_logs_stay_quiet_outside_preview(template: gtm.Template) -> None:
    answer = gtm.fire(template, [{"fire": setting()}], {SCRIPT: "fail"}, debug=False)
    assert answer["logs"] == [] and answer["outcomes"][0]["result"] == "failure"


def test_consent_mode_waits_for_analytics_storage_then_follows_it(template: gtm.Template) -> None:
    steps = [
        {"defaultConsent": ["analytics_storage", False]},
        {"fire": setting(consent="consentMode")},
        {"fire": setting(consent="consentMode")},  # fired again: boots once, one listener
        {"consent": ["analytics_storage", True]},
    ]
    answer = gtm.fire(template, steps, {SCRIPT: "snippet"})
    told = [w for w in answer["window"] if w[0].startswith("LoyJoyCollector.")]
    assert [w[0] for w in told] == ["LoyJoyCollector.boot", "LoyJoyCollector.consent"]
    assert told[0][1]["consent"] == "explicit" and told[1] == ["LoyJoyCollector.consent", True]
    assert [o["result"] for o in answer["outcomes"]] == ["success", "success"]


def test_consent_mode_without_any_consent_state_counts_as_granted(template: gtm.Template) -> None:
    """GTM's isConsentGranted: a type nobody set is granted (a site without Consent Mode sends at once)."""
    answer = gtm.fire(template, [{"fire": setting(consent="consentMode")}], {SCRIPT: "snippet"})
    assert ["LoyJoyCollector.consent", True] in answer["window"]


def test_consent_mode_follows_every_change(template: gtm.Template) -> None:
    steps = [
        {"defaultConsent": ["analytics_storage", False]},
        {"fire": setting(consent="consentMode")},
        {"consent": ["analytics_storage", True]},
        {"consent": ["analytics_storage", True]},  # no change: no call
        {"consent": ["analytics_storage", False]},
        {"consent": ["analytics_storage", True]},
    ]
    answer = gtm.fire(template, steps, {SCRIPT: "snippet"})
    told = [w[1] for w in answer["window"] if w[0] == "LoyJoyCollector.consent"]
    assert told == [True, False, True]


# ------------------------------------------------------------------------ the harness refuses, as GTM


FORBIDDEN = [
    ("var x = new Object();", "there is no `new` keyword"),
    ("var f = function () { return this; };", "no `this`"),
    ("var r = /loyjoy/;", "no regular expression literals"),
    ("var t = `x${1}`;", "template literals"),
    ("var o = {a: 1}; var {a} = o;", "destructuring"),
    ("window.LoyJoy = 1;", "`window` is not defined"),
    ("setTimeout(data.gtmOnSuccess, 10);", "`setTimeout` is not defined"),
    ("var e = encodeURIComponent('x');", "`encodeURIComponent` is not defined"),
    ("var p = 'x'.padStart(3);", ".padStart() is not in the standard library"),
    ("var n = 'injectScript'; var api = require(n);", "require takes one API name as a string literal"),
    ("var r = require; r('injectScript');", "`require` may only be called"),
    ("var s = require('sendHttpRequest');", "no such API in web templates"),
    ("var j = require('JSON'); j.rawJSON('1');", "JSON.rawJSON is not part of the JSON API"),
    ("var c = [].constructor;", "native constructors and prototypes are not reachable"),
    ("class A {}", "classes"),
    ("for (const x of [1]) {}", "for...of"),
]


@pytest.mark.parametrize(("line", "message"), FORBIDDEN, ids=[m for _, m in FORBIDDEN])
def test_a_forbidden_construct_is_refused(template: gtm.Template, line: str, message: str) -> None:
    variant = template.replace(code=line + "\n" + template.code)
    errors = gtm.check(variant)
    assert any(message in e for e in errors), errors


def test_an_api_without_its_permission_is_refused(template: gtm.Template) -> None:
    """GTM derives permissions from the APIs a template requires: one it lacks means it cannot run."""
    without = [p for p in template.permissions if p["instance"]["key"]["publicId"] != "inject_script"]
    errors = gtm.check(template.replace(permissions=without))
    assert (
        "code line 0: injectScript needs the inject_script permission, which ___WEB_PERMISSIONS___ does not declare"
        in errors
    )


def narrowed(template: gtm.Template, drop_key: str | None = None, urls: list[str] | None = None) -> gtm.Template:
    permissions = json.loads(json.dumps(template.permissions))
    for entry in permissions:
        instance = entry["instance"]
        for param in instance["param"]:
            if drop_key and param["key"] == "keys":
                items = param["value"]["listItem"]
                param["value"]["listItem"] = [i for i in items if i["mapValue"][0]["string"] != drop_key]
            if urls is not None and param["key"] == "urls":
                param["value"]["listItem"] = [{"type": 1, "string": u} for u in urls]
    return template.replace(permissions=permissions)


def test_a_window_call_outside_the_permissions_fails_the_tag(template: gtm.Template) -> None:
    variant = narrowed(template, drop_key="LoyJoyCollector.boot")
    assert gtm.check(variant) == []  # statically fine: the key is a run-time matter
    answer = gtm.fire(variant, [{"fire": setting()}], {SCRIPT: "snippet"})
    assert answer["outcomes"][0]["result"] == "error"
    assert "access_globals denied: call window.LoyJoyCollector.boot" in answer["outcomes"][0]["error"]
    assert not [w for w in answer["window"] if w[0] == "LoyJoyCollector.boot"]


def test_a_script_outside_the_url_patterns_is_never_injected(template: gtm.Template) -> None:
    variant = narrowed(template, urls=["https://cdn.example.org/loyjoy-collector.js"])
    answer = gtm.fire(variant, [{"fire": setting()}], {SCRIPT: "snippet"})
    assert ["script", SCRIPT] not in answer["window"]  # queryPermission said no: it boots the chat alone
    assert answer["outcomes"][0]["result"] == "failure"
    direct = template.replace(
        code="const injectScript = require('injectScript');\ninjectScript('https://evil.example/x.js', data.gtmOnSuccess, data.gtmOnFailure);"
    )
    answer = gtm.fire(direct, [{"fire": setting()}], {})
    assert answer["outcomes"][0]["result"] == "error"
    assert "inject_script denied: inject https://evil.example/x.js" in answer["outcomes"][0]["error"]


def test_a_failing_scenario_fails(template: gtm.Template) -> None:
    tests = template.tests
    tests["scenarios"] = [
        {
            "name": "wrong",
            "code": "runCode(mockData);\nassertThat(injected).isEqualTo(['https://elsewhere/loyjoy-collector.js', 'loyjoy-collector']);",
        },
        {"name": "unmet", "code": "runCode(mockData);\nassertApi('gtmOnFailure').wasCalled();"},
        {
            "name": "throws",
            "code": "mockData.collectorUrl = 'https://c.example.com';\nmock('makeString', function () { fail('no strings today'); });\nrunCode(mockData);",
        },
    ]
    sections = dict(template.sections)
    sections["___TESTS___"] = yaml.safe_dump(tests, sort_keys=False)
    results = {r["name"]: r for r in gtm.run_tests(gtm.Template(sections))}
    assert not any(r["passed"] for r in results.values())
    assert "is not equal to" in results["wrong"]["error"]
    assert results["unmet"]["error"] == "gtmOnFailure was not called"
    assert "no strings today" in results["throws"]["error"]


def test_url_patterns_as_the_permissions_page_describes(template: gtm.Template) -> None:
    cases = [
        ("https://*/loyjoy-collector.js", "https://x-abc-ew.a.run.app/loyjoy-collector.js", True),
        ("https://*/loyjoy-collector.js", "http://x.a.run.app/loyjoy-collector.js", False),
        ("https://*/loyjoy-collector.js", "https://x.a.run.app/evil.js", False),
        ("https://*/loyjoy-collector.js", "https://x.a.run.app/lj/loyjoy-collector.js", False),
        ("https://*/*/loyjoy-collector.js", "https://shop.example/lj/loyjoy-collector.js", True),
        ("https://*.example.com/*", "https://cdn.example.com/a.js", True),
        ("https://*.example.com/*", "https://example.com.evil/a.js", False),
    ]
    script = f"const s = require({str(gtm.SANDBOX_JS)!r}); process.stdout.write(JSON.stringify({json.dumps(cases)}.map(c => s.urlMatches(c[0], c[1]))))"
    answer = json.loads(subprocess.run([gtm.NODE, "-e", script], capture_output=True, text=True, check=True).stdout)
    assert answer == [c[2] for c in cases]


# ------------------------------------------------------------------------------------ in a browser

HARNESS_PAGE = PAGE_ORIGIN + "/gtm-harness/page.html"
HTTPS_COLLECTOR = "https://collector.test"  # the template injects https only: the browser's requests go here
PAGE_HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>GTM template harness</title>
<link rel="icon" href="data:,">
<script>window.dataLayer = window.dataLayer || [];</script>
<script src="/gtm-harness/loyjoy-standin.js"></script>
<script src="/gtm-harness/sandbox.js"></script>
</head><body><p>A page with the template's tag, fired by the harness.</p></body></html>"""


def serve_page(context: BrowserContext, collector_url: str | None, failure: str = "refused") -> None:
    """The harness page on the origin the collector allows, and https://collector.test proxied to the collector
    (or, without a collector, failing as `failure` says: refused, a 500, or a script that throws)."""
    files = {
        "/gtm-harness/page.html": (PAGE_HTML, "text/html"),
        "/gtm-harness/sandbox.js": (gtm.SANDBOX_JS.read_text(), "text/javascript"),
        "/gtm-harness/loyjoy-standin.js": ((ROOT / "snippet/demo/loyjoy-standin.js").read_text(), "text/javascript"),
    }

    def page(route: Route) -> None:
        path = route.request.url[len(PAGE_ORIGIN) :]
        body, kind = files[path]
        route.fulfill(status=200, body=body, content_type=kind)

    def collector(route: Route) -> None:
        if collector_url is None and failure == "refused":
            return route.abort("connectionrefused")
        if collector_url is None and failure == "500":
            return route.fulfill(status=500, body="upstream error", content_type="text/plain")
        if collector_url is None:
            return route.fulfill(status=200, body="throw new Error('a broken deploy');", content_type="text/javascript")
        url = collector_url + route.request.url[len(HTTPS_COLLECTOR) :]
        route.fulfill(response=route.fetch(url=url))

    context.route(PAGE_ORIGIN + "/gtm-harness/**", page)
    context.route(HTTPS_COLLECTOR + "/**", collector)


def fire_in_page(page: Page, template: gtm.Template, data: dict[str, Any]) -> None:
    page.evaluate(
        """({code, permissions, data}) => {
          window.gtmLogs = [];
          window.gtm = GtmSandbox.createRuntime(permissions, GtmSandbox.pageEnv(window, window.gtmLogs));
          window.gtm.setDefaultConsent('analytics_storage', false);
          window.gtmOutcome = GtmSandbox.fire(window.gtm, code, data);
        }""",
        {"code": template.code, "permissions": template.permissions, "data": gtm.with_defaults(template, data)},
    )
    page.wait_for_function("() => window.gtmOutcome.result !== 'pending'", timeout=15_000)


def wait_rows(local_bigquery: LocalBigQuery, tag: str, count: int, timeout: float = 15) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = local_bigquery.events("bot_id = @tag", tag=tag)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


@pytest.fixture
def harness_context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context()
    yield ctx
    ctx.close()


@pytest.mark.browser
def test_in_a_browser_the_tag_loads_the_collectors_snippet_and_events_land_in_bigquery(
    harness_context: BrowserContext,
    template: gtm.Template,
    collector: Collector,
    local_bigquery: LocalBigQuery,
    tag: str,
) -> None:
    serve_page(harness_context, collector.url)
    page = harness_context.new_page()
    errors: list[str] = []
    sent: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "request",
        lambda r: sent.append(r.method) if r.url.startswith(HTTPS_COLLECTOR + "/") and r.method == "POST" else None,
    )
    page.goto(HARNESS_PAGE)
    data = {"collectorUrl": HTTPS_COLLECTOR, "bot": tag, "process": "gtm-process", "consent": "consentMode"}
    assert gtm.validate(template, data) == []
    fire_in_page(page, template, data)
    assert page.evaluate("() => [gtmOutcome.result, gtmOutcome.error]") == ["success", None]
    page.evaluate("() => LoyJoy('open')")
    page.wait_for_timeout(1500)
    assert sent == [] and page.evaluate("() => LoyJoyCollector.pending()") == 3  # consent pending: in memory only
    assert page.evaluate("() => Object.keys(localStorage).filter(k => k.startsWith('ljc:'))") == []
    page.evaluate("() => gtm.updateConsent('analytics_storage', true)")  # the banner: Consent Mode update
    page.wait_for_function("() => LoyJoyCollector.pending() === 0", timeout=15_000)
    rows = wait_rows(local_bigquery, tag, 3)
    assert sorted(r["event_name"] for r in rows) == ["load", "open", "show"]
    assert {r["process_id"] for r in rows} == {"gtm-process"}
    assert {r["consent_analytics"] for r in rows} == {"granted"}
    assert len({r["event_id"] for r in rows}) == 3
    calls = page.evaluate("() => gtm.calls.map(c => c[0])")
    assert calls.count("injectScript") == 1 and "gtmOnSuccess" in calls
    assert errors == []


@pytest.mark.browser
@pytest.mark.parametrize("failure", ["refused", "500", "broken"])
def test_in_a_browser_with_the_collector_down_the_chat_still_boots(
    harness_context: BrowserContext, template: gtm.Template, failure: str
) -> None:
    serve_page(harness_context, None, failure)
    page = harness_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)) if "a broken deploy" not in str(e) else None)
    page.goto(HARNESS_PAGE)
    fire_in_page(page, template, {"collectorUrl": HTTPS_COLLECTOR, "process": "only-a-process", "consent": "none"})
    assert page.evaluate("() => window.gtmOutcome.result") == "failure"
    assert page.locator("#loyjoy-standin").count() == 1  # the chat is there without the collector
    assert page.evaluate("() => typeof window.LoyJoyCollector") == "undefined"
    assert any("booting LoyJoy without the collector" in line for line in page.evaluate("() => gtmLogs"))
    assert errors == []
