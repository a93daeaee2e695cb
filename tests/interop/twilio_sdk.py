#!/usr/bin/env python3
"""Drive sigil with the official `twilio` Python SDK (Serverless v1).

Env: SIGIL_API_URL, SIGIL_ACCOUNT_SID, SIGIL_AUTH_TOKEN, SIGIL_RECORD.
Every HTTP exchange made by the SDK is appended to SIGIL_RECORD as one JSON
object per line: {"method", "url", "status", "body"}. The two multipart
uploads are made with `requests` directly (the SDK has no upload call) and
are not recorded, since they are not part of the OpenAPI spec.
Prints "interop: N checks passed" and exits 0; any failure raises.
"""
import json
import os
import socket
import time
import uuid

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

API = os.environ["SIGIL_API_URL"].rstrip("/")

# SIGIL_RESOLVE=NAME=IP resolves NAME to IP, as curl's --resolve does: the API through an
# edge is at serverless.{domain}, which this machine's resolver may not know.
if os.environ.get("SIGIL_RESOLVE"):
    _NAME, _IP = os.environ["SIGIL_RESOLVE"].split("=", 1)
    _getaddrinfo = socket.getaddrinfo

    def _resolving(host, *args, **kwargs):
        return _getaddrinfo(_IP if host == _NAME else host, *args, **kwargs)

    socket.getaddrinfo = _resolving
ACCOUNT_SID = os.environ["SIGIL_ACCOUNT_SID"]
AUTH_TOKEN = os.environ["SIGIL_AUTH_TOKEN"]
RECORD = os.environ["SIGIL_RECORD"]

# Region/edge settings would make ClientBase.get_hostname() rewrite our host.
for var in ("TWILIO_EDGE", "TWILIO_REGION"):
    os.environ.pop(var, None)

CHECKS = 0


def check(cond, msg):
    global CHECKS
    assert cond, msg
    CHECKS += 1


class RecordingHttpClient(TwilioHttpClient):
    """TwilioHttpClient that appends every exchange to SIGIL_RECORD."""

    def request(self, method, url, params=None, data=None, headers=None,
                auth=None, timeout=None, allow_redirects=False):
        response = super().request(method, url, params=params, data=data,
                                   headers=headers, auth=auth, timeout=timeout,
                                   allow_redirects=allow_redirects)
        # The SDK passes query parameters separately; record the URL as sent.
        full_url = requests.Request(method.upper(), url, params=params).prepare().url
        with open(RECORD, "a", encoding="utf-8") as f:
            f.write(json.dumps({"method": method.upper(), "url": full_url,
                                "status": response.status_code,
                                "body": response.text}) + "\n")
        return response


def make_client(token):
    client = Client(ACCOUNT_SID, token, http_client=RecordingHttpClient())
    # Domain.absolute_url() builds every request URL from this attribute.
    client.serverless.base_url = API
    return client


def expect_error(fn, status, code=None, what=""):
    try:
        fn()
    except TwilioRestException as e:
        check(e.status == status, f"{what}: expected HTTP {status}, got {e.status} ({e.msg})")
        if code is not None:
            check(e.code == code, f"{what}: expected code {code}, got {e.code} ({e.msg})")
        return e
    raise AssertionError(f"{what}: expected TwilioRestException {status}, call succeeded")


def upload(kind, svc_sid, parent_sid, path, filename, content, ctype):
    """POST a multipart Asset/Function Version (no SDK call exists for this)."""
    url = f"{API}/v1/Services/{svc_sid}/{kind}/{parent_sid}/Versions"
    r = requests.post(url, auth=(ACCOUNT_SID, AUTH_TOKEN),
                      data={"Path": path, "Visibility": "public"},
                      files={"Content": (filename, content, ctype)}, timeout=30)
    check(r.status_code == 201, f"upload {kind}: status {r.status_code}: {r.text}")
    return r.json()


def main():
    open(RECORD, "w").close()
    client = make_client(AUTH_TOKEN)
    v1 = client.serverless.v1
    suffix = uuid.uuid4().hex[:8]

    # ---- Services: create / fetch by sid and unique_name / update
    uname = f"pyinterop-{suffix}"
    svc = v1.services.create(unique_name=uname, friendly_name="Py Interop")
    check(svc.sid.startswith("ZS") and len(svc.sid) == 34, f"bad service sid {svc.sid}")
    check(svc.unique_name == uname, f"unique_name {svc.unique_name!r}")
    check(svc.account_sid == ACCOUNT_SID, f"account_sid {svc.account_sid!r}")
    check(svc.include_credentials is True, "include_credentials should default to true")
    check(svc.ui_editable is False, "ui_editable should default to false")
    check(svc.domain_base and svc.domain_base.startswith(uname + "-"), f"domain_base {svc.domain_base!r}")
    check(v1.services(svc.sid).fetch().unique_name == uname, "fetch by sid")
    check(v1.services(uname).fetch().sid == svc.sid, "fetch by unique_name")
    upd = v1.services(svc.sid).update(friendly_name="Py Interop 2", ui_editable=True,
                                      include_credentials=False)
    check(upd.friendly_name == "Py Interop 2", f"updated friendly_name {upd.friendly_name!r}")
    check(upd.ui_editable is True and upd.include_credentials is False, "updated booleans")
    again = v1.services(svc.sid).fetch()
    check((again.friendly_name, again.ui_editable, again.include_credentials)
          == ("Py Interop 2", True, False), "update persisted")

    # ---- Services: pagination across several pages
    extra = [v1.services.create(unique_name=f"pyinterop-{suffix}-p{i}", friendly_name=f"P{i}").sid
             for i in range(5)]
    mine = set(extra) | {svc.sid}
    listed = [s.sid for s in v1.services.list(page_size=2)]
    check(len(listed) == len(set(listed)), f"duplicate sids across pages: {listed}")
    check(mine <= set(listed), f"list(page_size=2) missed {mine - set(listed)}")
    page1 = v1.services.page(page_size=2)
    check(page1.next_page_url and page1.next_page_url.startswith(API + "/"),
          f"next_page_url must be absolute on sigil: {page1.next_page_url!r}")
    check(page1.previous_page() is None, "first page has no previous page")
    first_sids = [s.sid for s in page1]
    check(len(first_sids) == 2, f"page 1 size {len(first_sids)}")
    page2 = page1.next_page()
    check(page2 is not None, "next_page() returned None")
    second_sids = [s.sid for s in page2]
    check(len(second_sids) == 2 and not set(first_sids) & set(second_sids),
          f"page 2 {second_sids} vs page 1 {first_sids}")
    back = page2.previous_page()
    check(back is not None and [s.sid for s in back] == first_sids, "previous_page() returns page 1")

    # ---- Errors on services
    e = expect_error(lambda: v1.services("ZS" + "0" * 32).fetch(), 404, 20404, "unknown service")
    check("/Services/ZS" in e.msg, f"404 message names the path: {e.msg}")
    expect_error(lambda: v1.services.create(unique_name=uname, friendly_name="dup"), 409,
                 what="duplicate unique_name")
    bad = make_client("f" * 32)
    expect_error(lambda: bad.serverless.v1.services(svc.sid).fetch(), 401, 20003, "wrong auth token")

    # ---- Environments
    s = v1.services(svc.sid)
    env = s.environments.create(unique_name="staging", domain_suffix="stage")
    check(env.sid.startswith("ZE") and env.service_sid == svc.sid, f"environment {env.sid}")
    check(env.domain_suffix == "stage" and env.build_sid is None, "env suffix/build_sid")
    check(env.domain_name.startswith(f"{svc.domain_base}-stage."), f"domain_name {env.domain_name!r}")
    check(s.environments(env.sid).fetch().unique_name == "staging", "fetch environment")
    scratch_env = s.environments.create(unique_name="scratch")
    check(scratch_env.domain_suffix is None, "domain_suffix null when not sent")
    check({env.sid, scratch_env.sid} == {x.sid for x in s.environments.list()}, "list environments")
    check(s.environments(scratch_env.sid).delete() is True, "delete environment")
    expect_error(lambda: s.environments(scratch_env.sid).fetch(), 404, 20404, "deleted environment")

    # ---- Functions and Assets
    fn = s.functions.create(friendly_name="hello")
    check(fn.sid.startswith("ZH") and fn.friendly_name == "hello", f"function {fn.sid}")
    check(s.functions(fn.sid).fetch().friendly_name == "hello", "fetch function")
    check(s.functions(fn.sid).update(friendly_name="hello2").friendly_name == "hello2", "update function")
    asset = s.assets.create(friendly_name="logo")
    check(asset.sid.startswith("ZH") and asset.friendly_name == "logo", f"asset {asset.sid}")
    check(s.assets(asset.sid).fetch().friendly_name == "logo", "fetch asset")
    check(s.assets(asset.sid).update(friendly_name="logo2").friendly_name == "logo2", "update asset")
    tmp_fn = s.functions.create(friendly_name="tmp-fn")
    tmp_asset = s.assets.create(friendly_name="tmp-asset")
    check({fn.sid, tmp_fn.sid} == {x.sid for x in s.functions.list()}, "list functions")
    check({asset.sid, tmp_asset.sid} == {x.sid for x in s.assets.list()}, "list assets")
    check(s.functions(tmp_fn.sid).delete() is True, "delete function")
    check(s.assets(tmp_asset.sid).delete() is True, "delete asset")
    check([x.sid for x in s.functions.list()] == [fn.sid], "function gone after delete")
    check([x.sid for x in s.assets.list()] == [asset.sid], "asset gone after delete")

    # ---- Versions (upload with requests, read with the SDK)
    code = "exports.handler = (context, event, callback) => callback(null, 'hi');\n"
    fv = upload("Functions", svc.sid, fn.sid, "/hello", "hello.js", code, "application/javascript")
    av = upload("Assets", svc.sid, asset.sid, "logo.txt", "logo.txt", "logo\n", "text/plain")
    check(fv["sid"].startswith("ZN") and av["sid"].startswith("ZN"), "version sids are ZN")
    fvi = s.functions(fn.sid).function_versions(fv["sid"]).fetch()
    check((fvi.path, fvi.visibility, fvi.function_sid) == ("/hello", "public", fn.sid),
          f"function version {fvi.path} {fvi.visibility} {fvi.function_sid}")
    check([x.sid for x in s.functions(fn.sid).function_versions.list()] == [fv["sid"]], "list fn versions")
    content = s.functions(fn.sid).function_versions(fv["sid"]).function_version_content().fetch()
    check(content.content == code, f"function content mismatch: {content.content!r}")
    avi = s.assets(asset.sid).asset_versions(av["sid"]).fetch()
    check((avi.path, avi.visibility, avi.asset_sid) == ("/logo.txt", "public", asset.sid),
          f"asset version {avi.path} {avi.visibility} {avi.asset_sid} (leading / is prepended)")
    check([x.sid for x in s.assets(asset.sid).asset_versions.list()] == [av["sid"]], "list asset versions")

    # ---- Variables
    env_ctx = s.environments(env.sid)
    var = env_ctx.variables.create(key="GREETING", value="hello")
    check(var.sid.startswith("ZV") and (var.key, var.value) == ("GREETING", "hello"), "create variable")
    check(env_ctx.variables(var.sid).fetch().value == "hello", "fetch variable")
    check(env_ctx.variables(var.sid).update(value="bonjour").value == "bonjour", "update variable")
    big = env_ctx.variables.create(key="BIG", value="x" * 450)
    check(len(big.value) == 450, "450-byte value accepted")
    check({var.sid, big.sid} == {x.sid for x in env_ctx.variables.list()}, "list variables")
    check(env_ctx.variables(big.sid).delete() is True, "delete variable")
    check([x.sid for x in env_ctx.variables.list()] == [var.sid], "variable gone after delete")
    expect_error(lambda: env_ctx.variables.create(key="TOOBIG", value="x" * 451), 400, 20001,
                 "451-byte variable value")

    # ---- Build
    deps = '[{"name":"twilio","version":"3.29.2"}]'
    build = s.builds.create(asset_versions=[av["sid"]], function_versions=[fv["sid"]],
                            dependencies=deps, runtime="node22")
    check(build.sid.startswith("ZB") and build.status in ("building", "completed"),
          f"build {build.sid} status {build.status}")
    check(build.runtime == "node22", f"runtime {build.runtime!r}")
    check(build.dependencies == [{"name": "twilio", "version": "3.29.2"}], f"deps {build.dependencies}")
    check([v["sid"] for v in build.function_versions] == [fv["sid"]], "build function_versions")
    check([v["sid"] for v in build.asset_versions] == [av["sid"]], "build asset_versions")
    check(build.function_versions[0]["visibility"] == "PUBLIC", "upper-case visibility in build")
    deadline = time.time() + 30
    while True:
        status = s.builds(build.sid).build_status().fetch().status
        assert status in ("building", "completed"), f"build status {status!r}"
        if status == "completed":
            break
        assert time.time() < deadline, "build did not complete within 30 s"
        time.sleep(0.5)
    check(status == "completed", "build_status reached completed")
    check(s.builds(build.sid).fetch().status == "completed", "build fetch shows completed")
    check([b.sid for b in s.builds.list()] == [build.sid], "list builds")

    # ---- Deployment
    dep = env_ctx.deployments.create(build_sid=build.sid)
    check(dep.sid.startswith("ZD") and dep.build_sid == build.sid, f"deployment {dep.sid}")
    check(dep.environment_sid == env.sid, "deployment environment_sid")
    check(env_ctx.fetch().build_sid == build.sid, "environment.build_sid is the deployed build")
    check(env_ctx.deployments(dep.sid).fetch().build_sid == build.sid, "fetch deployment")
    check([d.sid for d in env_ctx.deployments.list()] == [dep.sid], "list deployments")
    expect_error(lambda: env_ctx.deployments.create(build_sid=build.sid), 409,
                 what="re-deploying the active build")

    # ---- Logs (may be empty)
    logs = env_ctx.logs.list()
    check(isinstance(logs, list) and all(l.sid.startswith("NO") for l in logs), "list logs")

    # ---- Delete services
    for sid in extra:
        check(v1.services(sid).delete() is True, f"delete service {sid}")
    check(v1.services(svc.sid).delete() is True, "delete main service")
    expect_error(lambda: v1.services(svc.sid).fetch(), 404, 20404, "fetch deleted service")
    expect_error(lambda: v1.services(extra[0]).fetch(), 404, 20404, "fetch deleted extra service")

    print(f"interop: {CHECKS} checks passed")


if __name__ == "__main__":
    main()
