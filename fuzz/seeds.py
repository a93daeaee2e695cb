#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into fuzz/corpus/<target>/seed-*.

Each target reads a first byte whose low bit is clear (b"0") as "text follows" (see the doc
comment at the top of each target); seeds use that form so they stay readable. Run from
anywhere: python3 fuzz/seeds.py. Existing seeds are overwritten, the rest of the corpus kept.
"""

import json
import pathlib
import urllib.parse

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
TEXT = b"0"


def write(target, name, data):
    d = FUZZ / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / f"seed-{name}").write_bytes(TEXT + data)


def signature():
    vectors = json.loads((ROOT / "tests/fixtures/signature_vectors.json").read_text())
    for i, c in enumerate(vectors["checks"]):
        if c["mode"] == "form":
            body = urllib.parse.urlencode([tuple(p) for p in c["params"] or []])
        else:
            body = c["body"] or ""
        sig = c["x_twilio_signature"] or ""
        write("signature", f"{i:02}-{c['case']}-{c['check']}", f"{c['url']}\n{c['auth_token']}\n{sig}\n{body}")


def range_():
    for i, (size, value) in enumerate([
        (100, "bytes=0-1"),  # the iOS probe
        (100, "bytes=0-0"),
        (1, "bytes=0-"),
        (100, "bytes=10-19"),
        (100, "bytes=-10"),
        (100, "bytes=-1000"),
        (100, "bytes=90-200"),
        (100, "bytes= 5 - 6 "),
        (100, "bytes=0-,"),
        (100, "bytes=100-"),
        (0, "bytes=0-1"),
        (100, "bytes=-0"),
        (100, "bytes=5-4"),
        (100, "bytes=0-1,5-6"),
        (100, "bytes=99999999999999999999-"),
        (18446744073709551615, "bytes=9999999999999999999-"),
        (100, "items=0-1"),
        (100, "bytes=a-b"),
    ]):
        write("range", f"{i:02}", f"{size}\n{value}")


def conditional():
    at = "Sun, 09 Sep 2001 01:46:40 GMT"
    before = "Sun, 09 Sep 2001 01:46:39 GMT"
    cases = [
        ("GET", ["If-None-Match: \"abc\""]),
        ("GET", ["If-None-Match: W/\"abc\", \"x\""]),
        ("GET", ["If-None-Match: *"]),
        ("GET", [f"If-Modified-Since: {at}"]),
        ("HEAD", [f"If-Modified-Since: {before}"]),
        ("GET", ["If-Match: \"abc\"", f"If-Unmodified-Since: {before}"]),
        ("PUT", ["If-Match: W/\"abc\""]),
        ("POST", ["If-None-Match: \"abc\""]),
        ("GET", ["Range: bytes=0-1", "If-Range: \"abc\""]),
        ("GET", ["Range: bytes=0-1", f"If-Range: {at}"]),
        ("GET", ["If-Range: W/\"abc\""]),
        ("GET", ["If-Modified-Since: Sunday, 09-Sep-01 01:46:40 GMT"]),
        ("GET", ["If-Modified-Since: Sun Sep  9 01:46:40 2001"]),
    ]
    for i, (method, headers) in enumerate(cases):
        write("conditional", f"{i:02}", "\n".join([method, "abc", "1000000000", *headers]))


PATHS = [
    "/", "index.html", "/assets/index.html", "/a/b-c_d.e~f!*=", "/ünïcødé/日本.txt",
    "/.well-known/x", "/a/../b", "/./a", "/..", "//a", "/a/", "/a\\b", "/a%2e", "/a\0b",
    "/a b", "/a;b", "/" + "a" * 255,
]


def asset_path():
    for i, p in enumerate(PATHS):
        # No mode byte: this target takes its input whole.
        d = FUZZ / "corpus" / "asset_path"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"seed-{i:02}").write_bytes(p.encode())


def request_path():
    for i, t in enumerate([
        "/", "/a/b.txt", "/a/%62.txt", "/a/../a/b.txt", "/a/%2e%2e/a/b.txt", "/%2e%2e/%2e%2e/etc/passwd",
        "/a%2Fb.txt", "/a/b.txt%00", "/%C3%BCn%C3%AF/%E6%97%A5%E6%9C%AC.txt", "/%ff", "/a\\b",
        "/assets/index.html?x=1", "http://x-1234.example/a/b.txt", "*", "/.well-known/x",
        "/%252e%252e/", "//a/b.txt",
        # Also read as Host values.
        "a-1234.localhost:8080", "[::1]:8443", "evil@a.localhost", "a.localhost:abc", "a%41b",
    ]):
        write("request_path", f"{i:02}", t)


def multipart():
    def body(boundary, parts):
        out = b""
        for headers, data in parts:
            out += b"--" + boundary + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + data + b"\r\n"
        return out + b"--" + boundary + b"--\r\n"

    def upload(boundary, path, visibility, name, ctype, content):
        return body(boundary, [
            ([b'Content-Disposition: form-data; name="Path"'], path),
            ([b'Content-Disposition: form-data; name="Visibility"'], visibility),
            ([b'Content-Disposition: form-data; name="Content"; filename="' + name + b'"',
              b"Content-Type: " + ctype], content),
        ])

    project = ROOT / "tests/fixtures/toolkit-project"
    # The Serverless Toolkit (node form-data): 26 dashes and 24 digits.
    toolkit = b"-" * 26 + b"518446124137372051203741"
    # reqwest / twilio-python style boundaries.
    other = b"ae0ccb1ae8c9a4a0-a8bd3c4f2d3e4bf9-1c8a5f1b9d1c6e22-0c3f8a5e1b2d4c6f"
    cases = [
        (toolkit, upload(toolkit, b"/logo.txt", b"public", b"logo.txt", b"text/plain",
                         (project / "assets/logo.txt").read_bytes())),
        (toolkit, upload(toolkit, b"/message.xml", b"protected", b"message.protected.xml", b"application/xml",
                         (project / "assets/message.protected.xml").read_bytes())),
        (toolkit, upload(toolkit, b"/secret.json", b"private", b"secret.private.json", b"application/json",
                         (project / "assets/secret.private.json").read_bytes())),
        (other, upload(other, b"/hello", b"Public", b"hello.js", b"application/javascript",
                       (project / "functions/hello.js").read_bytes())),
        (other, upload(other, b"/a/../b", b"public", b"x", b"application/octet-stream", bytes(range(256)))),
        (other, upload(other, b"/x", b"secret", b"x", b"text/plain", b"")),
        # Content first, an unknown part, no Path.
        (other, body(other, [
            ([b'Content-Disposition: form-data; name="Content"; filename="a"'], b"abc"),
            ([b'Content-Disposition: form-data; name="Extra"'], b"ignored"),
            ([b'Content-Disposition: form-data; name="Visibility"'], b"public"),
        ])),
        # Path twice.
        (other, body(other, [
            ([b'Content-Disposition: form-data; name="Path"'], b"/a"),
            ([b'Content-Disposition: form-data; name="Path"'], b"/b"),
        ])),
        # A Path part over the 4 KiB text-part limit (413).
        (other, upload(other, b"/" + b"p" * 5000, b"public", b"p", b"text/plain", b"p")),
        # Truncated.
        (other, upload(other, b"/t", b"public", b"t", b"text/plain", b"x" * 100)[:-20]),
    ]
    for i, (boundary, data) in enumerate(cases):
        ctype = b"multipart/form-data; boundary=" + boundary
        write("multipart", f"{i:02}", ctype + b"\n" + data)
    write("multipart", "not-multipart", b"application/x-www-form-urlencoded\nPath=%2Fa&Visibility=public")
    write("multipart", "quoted-boundary", b'multipart/form-data; boundary="b"\n' + body(b"b", [
        ([b'Content-Disposition: form-data; name="Path"'], b"/q"),
        ([b'Content-Disposition: form-data; name="Visibility"'], b"public"),
        ([b'Content-Disposition: form-data; name="Content"'], b"q"),
    ]))


def manifest():
    entry = {
        "sid": "ZN" + "0" * 32, "parent_sid": "ZH" + "1" * 32, "date_created": 1700000000,
        "path": "/assets/index.html", "visibility": "public", "sha256": "ab" * 32, "size": 42,
        "content_type": "text/html",
    }
    fn_entry = dict(entry, path="/hello", visibility="protected", content_type=None, sha256="cd" * 32)
    build = {
        "service_sid": "ZS" + "2" * 32,
        "asset_versions": [entry, dict(entry, path="/logo.png", content_type=None, visibility="private")],
        "function_versions": [fn_entry],
        "dependencies": [{"name": "twilio", "version": "^5"}],
        "runtime": "node22", "status": "completed", "failure": None,
        "encodings": {"ab" * 32: [{"coding": "br", "sha256": "ef" * 32, "size": 20},
                                   {"coding": "gzip", "sha256": "12" * 32, "size": 25}]},
        "date_updated": 1700000001,
    }
    write("manifest", "build", json.dumps(build))
    write("manifest", "build-building", json.dumps(dict(build, status="building", encodings={})))
    legacy = dict(build)
    del legacy["encodings"]  # written before encodings existed
    write("manifest", "build-no-encodings", json.dumps(legacy))
    write("manifest", "entry", json.dumps(entry))
    write("manifest", "version", json.dumps({
        "service_sid": "ZS" + "2" * 32, "path": "/a", "visibility": "public", "sha256": "ab" * 32,
        "size": 1, "content_type": None}))
    write("manifest", "environment", json.dumps({
        "unique_name": "dev", "domain_suffix": None, "domain_name": "x-1234-dev.example",
        "build_sid": "ZB" + "3" * 32, "date_updated": 1}))
    write("manifest", "dependencies", '[{"name":"twilio","version":"^5"},{"name":"@twilio/runtime-handler","version":"2.0.0"}]')
    write("manifest", "dependencies-quoted", '"[{"name":"twilio","version":"^5"}]"')
    write("manifest", "dependencies-string", json.dumps('[{"name":"twilio","version":"^5"}]'))


if __name__ == "__main__":
    signature()
    range_()
    conditional()
    asset_path()
    request_path()
    multipart()
    manifest()
    for d in sorted((FUZZ / "corpus").iterdir()):
        print(d.name, len(list(d.iterdir())))
