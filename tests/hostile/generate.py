#!/usr/bin/env python3
"""Writes tests/hostile/cases.toml, the hostile-request corpus that
tests/hostile.rs replays against the real server. Edit the tables here and
run `python3 tests/hostile/generate.py`; the TOML is what the test reads.

Placeholders in bodies, paths and headers: {SECRET} is the bridge's secret.
`pad = [token, text, n]` replaces `token` in the body with `text` * n."""

import json
import os

S = "{SECRET}"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
cases = []


def case(name, body="", status=400, error="", **kw):
    c = {"name": name, "status": status}
    if error:
        c["error"] = error
    if isinstance(body, bytes):
        c["body_hex"] = body.hex()
    else:
        c["body"] = body
    c.update(kw)
    cases.append(c)


def oe(**fields):
    base = {"PrinterId": "p", "SecretKey": S, "EventType": 6, "Progress": 10}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}, ensure_ascii=False)


VALID = '{"PrinterId":"p","SecretKey":"' + S + '","EventType":6,"Progress":10}'

# --- broken JSON ---------------------------------------------------------
for cut in [1, 2, 5, 13, 20, 30, 40, 55, 62, len(VALID) - 1]:
    case(f"broken JSON: cut after {cut} bytes", VALID[:cut], error="not valid JSON")
for name, body in [
    ("trailing garbage", VALID + "x"),
    ("two objects", VALID + VALID),
    ("single quotes", "{'PrinterId':'p','EventType':1}"),
    ("unquoted keys", '{PrinterId:"p",EventType:1}'),
    ("trailing comma", '{"PrinterId":"p","EventType":1,}'),
    ("comment", '{"PrinterId":"p",/* c */"EventType":1}'),
    ("NaN literal", '{"PrinterId":"p","EventType":NaN}'),
    ("Infinity literal", '{"PrinterId":"p","EventType":Infinity}'),
    ("leading zero", '{"PrinterId":"p","EventType":01}'),
    ("plus sign", '{"PrinterId":"p","EventType":+1}'),
    ("hex number", '{"PrinterId":"p","EventType":0x1}'),
    ("raw control character in a string", '{"PrinterId":"p\x01","EventType":1}'),
    ("bad escape", '{"PrinterId":"p\\x41","EventType":1}'),
    ("lone surrogate escape", '{"PrinterId":"\\ud800","EventType":1}'),
    ("number out of range", '{"PrinterId":"p","EventType":1e999}'),
    ("400-digit number", '{"PrinterId":"p","EventType":1' + "0" * 400 + "}"),
    ("NUL before the object", "\x00" + VALID),
    ("unterminated string", '{"PrinterId":"p'),
    ("missing colon", '{"PrinterId" "p"}'),
    ("missing value", '{"PrinterId":}'),
]:
    case(f"broken JSON: {name}", body, error="not valid JSON")
for name, body in [("null", "null"), ("true", "true"), ("number", "123"),
                   ("string", '"hello"'), ("empty array", "[]"), ("array of objects", "[{}]")]:
    case(f"not an object: {name}", body, error="must be a JSON object")
case("empty object", "{}", error="neither an OctoEverywhere")
case("whitespace only", "  \r\n\t ", error="body is empty")
case("byte-order mark only", "\ufeff", error="body is empty")
case("empty body", "", error="body is empty")
case("nested 65 levels", '{"PrinterId":"p","EventType":1,"x":' + "[" * 64 + "]" * 64 + "}",
     error="nested deeper than 64 levels")
case("unclosed nesting", '{"a":' + "[" * 5000, error="nested deeper than 64 levels")
case("objects nested 200 levels", '{"a":' * 200 + "1" + "}" * 200, error="nested deeper than 64 levels")

# --- wrong types (OctoEverywhere) ----------------------------------------
for field, value, problem in [
    ("EventType", {"a": 1}, "expected a number"),
    ("EventType", [1], "expected a number"),
    ("EventType", True, "expected a number"),
    ("EventType", "abc", "expected a number"),
    ("EventType", 1.5, "expected a whole number"),
    ("EventType", 1e20, "expected a whole number"),
    ("PrinterId", 5, "expected text"),
    ("PrinterId", True, "expected text"),
    ("PrinterId", {}, "expected text"),
    ("PrinterId", ["p"], "expected text"),
    ("Progress", True, "expected a number"),
    ("Progress", [], "expected a number"),
    ("Progress", "ten", "expected a number"),
    ("DurationSec", "x", "expected a number"),
    ("TimeRemainingSec", {}, "expected a number"),
    ("ZOffsetMM", "abc", "expected a number"),
    ("CurrentLayer", [], "expected a number"),
    ("TotalLayers", False, "expected a number"),
    ("FileName", {}, "expected text"),
    ("PrinterName", [1], "expected text"),
    ("Error", {"a": 1}, "expected text"),
    ("SnapshotUrl", True, "expected text"),
    ("PrintId", [], "expected text"),
    ("SecretKey", {}, "expected text"),
]:
    case(f"wrong type: {field} = {json.dumps(value)}", oe(**{field: value}),
         error=f"field `{field}`: {problem}")
case("missing EventType value (null)", oe(EventType=None), error="missing field `EventType`")
case("EventType empty text", oe(EventType=""), error="missing field `EventType`")
case("PrinterId null", oe(PrinterId=None), error="missing field `PrinterId`")
case("PrinterId empty", oe(PrinterId=""), error="missing field `PrinterId`")
case("PrinterId of control characters only", oe(PrinterId="\u0000\u0001\u202e"),
     error="printer id has no printable characters")
case("forced dialect without EventType", '{"PrinterId":"p"}', path="/webhook/octoeverywhere",
     error="missing field `EventType`")

# --- wrong content types -------------------------------------------------
for ct in ["application/xml", "text/html", "image/jpeg", "application/pdf", "text/csv",
           "application/x-yaml", "application/json-seq", "multipart/mixed", "garbage",
           "application/javascript", "text/xml", "application/x-www-form-urlencoded-x"]:
    case(f"content type {ct}", VALID, status=415, error="unsupported media type", content_type=ct)
case("very long content type", VALID, status=415, error="unsupported media type",
     content_type="application/" + "x" * 5000)
case("form body to the OctoEverywhere path", "PrinterId=p&EventType=1", status=415,
     content_type=FORM, path="/webhook/octoeverywhere", error="not accepted by the octoeverywhere dialect")
case("multipart without a boundary", "topic=x", content_type="multipart/form-data",
     error="bad Content-Type")

# --- multipart -----------------------------------------------------------


def mp(parts, boundary="XyZ"):
    out = b""
    for name, value in parts:
        out += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n".encode()
        out += value if isinstance(value, bytes) else value.encode()
        out += b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


MP = "multipart/form-data; boundary=XyZ"
good_mp = mp([("deviceIdentifier", "mp"), ("apiSecret", S), ("topic", "Print Done")])
for cut in [10, 40, len(good_mp) // 2, len(good_mp) - 9]:
    case(f"multipart cut after {cut} bytes", good_mp[:cut].decode(), content_type=MP,
         error="multipart body is malformed")
case("multipart with another boundary", good_mp.decode(),
     content_type="multipart/form-data; boundary=other", error="no part starts with the boundary")
case("multipart part with broken JSON", mp([("topic", "Print Done"), ("job", '{"file":')]).decode(),
     content_type=MP, error="field `job` is not valid JSON")
case("multipart part with a duplicate key",
     mp([("topic", "Print Done"), ("job", '{"a":1,"a":2}')]).decode(), content_type=MP,
     error="duplicate key `a`")
case("multipart part nested too deep",
     mp([("topic", "Print Done"), ("job", '{"a":' + "[" * 80 + "]" * 80 + "}")]).decode(),
     content_type=MP, error="nested deeper than 64 levels")
case("multipart text parts over 1 MiB", mp([("topic", "Print Done"), ("meta", "@@")]).decode(),
     content_type=MP, pad=["@@", "m", 1_048_600], status=413,
     error="multipart text parts larger than 1048576 bytes")
case("multipart truncated in a part with a 100,000-character name",
     '--XyZ\r\nContent-Disposition: form-data; name="@@"\r\n\r\nunfinished', content_type=MP, pad=["@@", "n", 100_000],
     error="multipart body is malformed")
case("multipart with no parts", "--XyZ--\r\n", content_type=MP, error="neither an OctoEverywhere")
case("multipart part without a device", mp([("topic", "Print Done")]).decode(), content_type=MP,
     error="deviceIdentifier")

# --- invalid UTF-8 -------------------------------------------------------
for name, raw in [
    ("in a value", b'{"PrinterId":"\xff\xfe","EventType":1}'),
    ("in a key", b'{"Printer\xffId":"p","EventType":1}'),
    ("overlong encoding", b'{"PrinterId":"\xc0\xaf","EventType":1}'),
    ("encoded surrogate", b'{"PrinterId":"\xed\xa0\x80","EventType":1}'),
    ("truncated sequence", b'{"PrinterId":"p\xe2\x82","EventType":1}'),
    ("Latin-1 text", b'{"PrinterId":"p","PrinterName":"Drucker \xe9","EventType":1}'),
]:
    case(f"invalid UTF-8 {name}", raw, error="not valid JSON")
case("invalid UTF-8 in a form body", b"topic=Print+Done&deviceIdentifier=\xff\xfe", content_type=FORM,
     status=401, error="missing secret")
case("invalid UTF-8 in a multipart part", mp([("topic", "Print Done"), ("deviceIdentifier", b"\xff\xfe")]),
     content_type=MP, status=401, error="missing secret")
case("invalid UTF-8 percent-encoded in the query", "", method="GET", content_type="",
     path="/webhook?topic=Print%20Done&deviceIdentifier=%FF%FE", status=401, error="missing secret")

# --- gigantic ------------------------------------------------------------
case("JSON body over 1 MiB", '{"PrinterId":"p","EventType":1,"x":"@@"}', pad=["@@", "a", 1_100_000],
     status=413, error="body larger than 1048576 bytes")
case("form body over 1 MiB", "topic=Print+Done&deviceIdentifier=p&x=@@", content_type=FORM,
     pad=["@@", "b", 1_100_000], status=413, error="body larger than 1048576 bytes")
case("multipart body over 16 MiB", mp([("topic", "Print Done"), ("snapshot", "@@")]).decode(),
     content_type=MP, pad=["@@", "c", 17_000_000], status=413, error="body larger than 16777216 bytes")
case("text/plain body over 1 MiB", "@@", content_type="text/plain", pad=["@@", "{", 1_100_000],
     status=413, error="body larger than")

# --- duplicate keys ------------------------------------------------------
case("duplicate EventType", '{"PrinterId":"p","EventType":1,"EventType":2}', error="duplicate key `EventType`")
case("duplicate SecretKey", '{"PrinterId":"p","SecretKey":"' + S + '","SecretKey":"x","EventType":1}',
     error="duplicate key `SecretKey`")
case("duplicate PrinterId", '{"PrinterId":"a","PrinterId":"b","EventType":1}', error="duplicate key `PrinterId`")
case("duplicate key in a nested object",
     '{"topic":"Print Done","deviceIdentifier":"d","job":{"file":{"name":"a","name":"b"}}}',
     error="duplicate key `name`")
case("duplicate key in a form field's JSON", 'topic=Print+Done&deviceIdentifier=d&job=%7B%22a%22%3A1%2C%22a%22%3A2%7D',
     content_type=FORM, error="duplicate key `a`")
case("keys differing only in case", '{"PrinterId":"p","EventType":1,"eventtype":2}', status=401,
     error="missing secret")

# --- wrong secrets -------------------------------------------------------
for name, body, extra, err in [
    ("wrong SecretKey", oe(SecretKey="nope"), {}, "wrong secret"),
    ("no secret", oe(SecretKey=...), {}, "missing secret"),
    ("empty SecretKey", oe(SecretKey=""), {}, "missing secret"),
    ("secret with a trailing space", oe(SecretKey=S + " "), {}, "wrong secret"),
    ("secret in upper case", oe(SecretKey="{SECRET_UPPER}"), {}, "wrong secret"),
    ("prefix of the secret", oe(SecretKey="{SECRET_PREFIX}"), {}, "wrong secret"),
    ("secret plus one character", oe(SecretKey=S + "x"), {}, "wrong secret"),
    ("secret with a NUL appended", oe(SecretKey=S + "\u0000"), {}, "wrong secret"),
    ("secret as a number", oe(SecretKey=12345), {}, "wrong secret"),
    ("secret under another key", oe(SecretKey=..., secret=S), {}, "missing secret"),
    ("wrong ?token=", oe(SecretKey=...), {"path": "/webhook?token=nope"}, "wrong secret"),
    ("wrong Bearer", oe(SecretKey=...), {"headers": [["authorization", "Bearer nope"]]}, "wrong secret"),
    ("Bearer without a token", oe(SecretKey=...), {"headers": [["authorization", "Bearer"]]}, "missing secret"),
    ("Basic credentials", oe(SecretKey=...), {"headers": [["authorization", "Basic dXNlcjpwYXNz"]]}, "missing secret"),
    ("wrong X-Print2mqtt-Secret", oe(SecretKey=...), {"headers": [["x-print2mqtt-secret", "nope"]]}, "wrong secret"),
    ("wrong apiSecret", '{"topic":"Print Done","deviceIdentifier":"d","apiSecret":"nope"}', {}, "wrong secret"),
    ("wrong apiSecret in a form", "topic=Print+Done&deviceIdentifier=d&apiSecret=nope",
     {"content_type": FORM}, "wrong secret"),
    ("wrong apiSecret in the query", "", {"method": "GET", "content_type": "",
     "path": "/webhook?topic=Print%20Done&deviceIdentifier=d&apiSecret=nope"}, "wrong secret"),
    ("right secret in another printer's field", '{"PrinterId":"p","EventType":1,"PrinterName":"' + S + '"}', {},
     "missing secret"),
]:
    case(f"auth: {name}", body, status=401, error=err, **extra)

# --- methods and paths ---------------------------------------------------
for method in ["DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECTX"]:
    case(f"method {method}", VALID, method=method, status=405, error="method not allowed")
for path in ["/webhook/unknown", "/WEBHOOK", "/webhooks", "/webhook/octoeverywhere/x",
             "/webhook%2Foctoprint", "/hook", "/webhook/..%2F..%2Fetc"]:
    case(f"path {path}", VALID, path=path, status=404, error="not found")
case("GET without a query", "", method="GET", content_type="", error="body is empty")
case("GET with only routing parameters and a wrong token", "", method="GET", content_type="",
     path="/webhook?token=x&printer=y", status=401, error="wrong secret")
case("GET with only routing parameters", "", method="GET", content_type="", path="/webhook?token=" + S + "&printer=y",
     error="body is empty")

# --- forms and queries ---------------------------------------------------
case("form without either dialect's fields", "a=1&b=2", content_type=FORM, error="neither an OctoEverywhere")
case("form without a device", "topic=Print+Done", content_type=FORM, error="deviceIdentifier")
case("form with broken JSON", "topic=Print+Done&deviceIdentifier=x&job=%7B%22a%22", content_type=FORM,
     error="field `job` is not valid JSON")
case("form with JSON nested too deep", "topic=Print+Done&deviceIdentifier=x&job=%7B%22a%22%3A"
     + "%5B" * 70 + "%5D" * 70 + "%7D", content_type=FORM, error="nested deeper than 64 levels")
case("form of percent signs", "%%%", content_type=FORM, error="neither an OctoEverywhere")
case("form of empty pairs", "=&=&=", content_type=FORM, error="neither an OctoEverywhere")
case("form of 10,000 pairs", "@@", content_type=FORM, pad=["@@", "x=1&", 10_000], error="neither an OctoEverywhere")
case("query without a device", "", method="GET", content_type="", path="/webhook?topic=Print%20Done",
     error="deviceIdentifier")
case("form without Content-Type", "topic=Print+Done", content_type="", error="deviceIdentifier")

# --- accepted: hostile values published sanitised ------------------------
n = 0


def accepted(name, body, printer=None, publishes=None, absent=None, **kw):
    global n
    n += 1
    c = {"printer": printer} if printer else {}
    if publishes:
        c["publishes"] = publishes
    if absent:
        c["absent"] = absent
    case(f"accepted: {name}", body, status=200, **c, **kw)


for i, pid in enumerate([
    "../../etc/passwd", "$SYS/broker/load", "a/b/#", "+", "#", "x\u0000y", "a\r\nX-Injected: 1",
    "<script>alert(1)</script>", "'; DROP TABLE printers; --", "${jndi:ldap://x/a}", "{{7*7}}",
    "%2F%2B%23", "\u202egnp.exe", "printer \U0001f5a8\ufe0f", "zero\u200bwidth", "homeassistant/sensor/x/config",
    "bridge", "P" * 10_000,
]):
    accepted(f"printer id {json.dumps(pid[:40])}", oe(PrinterId=pid, EventType=1, Progress=...))
accepted("file name with controls and an RTL override",
         oe(PrinterId="h-file", FileName="evil\r\nname\u0000.gcode\u202e\u001b[31m"),
         printer="h-file", publishes={"file": "evil  name.gcode[31m"})
accepted("file name of 100,000 characters", oe(PrinterId="h-longfile", FileName="@@"),
         pad=["@@", "f", 100_000], printer="h-longfile", publishes={"file": "f" * 1024})
accepted("error text with escape sequences",
         oe(PrinterId="h-error", EventType=9, Error="line1\nline2\u001b[31m\u0007"),
         printer="h-error", publishes={"error": "line1 line2[31m", "state": "error"})
accepted("printer name breaking out of JSON",
         oe(PrinterId="h-name", PrinterName='Ender "3"\\ }],{"evil":1}'), printer="h-name")
accepted("printer name of 50,000 characters", oe(PrinterId="h-longname", PrinterName="@@"),
         pad=["@@", "\u00e9", 50_000], printer="h-longname")
accepted("5,000 unknown keys", '{"PrinterId":"h-keys","SecretKey":"' + S + '","EventType":6,"Progress":5'
         + "".join(f',"k{i}":{i}' for i in range(5000)) + "}", printer="h-keys", publishes={"progress": "5"})
accepted("URL with a javascript scheme and controls (dropped: only http and https)",
         oe(PrinterId="h-url", SnapshotUrl="javascript:alert(1)\r\n"), printer="h-url",
         publishes={"state": "printing"}, absent=["snapshot_url"])
accepted("progress -5", oe(PrinterId="h-p1", Progress=-5), printer="h-p1", publishes={"progress": "0"})
accepted("progress 250", oe(PrinterId="h-p2", Progress=250), printer="h-p2", publishes={"progress": "100"})
accepted("progress NaN", oe(PrinterId="h-p3", Progress="NaN"), printer="h-p3",
         publishes={"state": "printing"}, absent=["progress"])
accepted("progress 1e308", oe(PrinterId="h-p4", Progress=1e308), printer="h-p4", publishes={"progress": "100"})
accepted("progress Infinity text", oe(PrinterId="h-p5", Progress="Infinity"), printer="h-p5", absent=["progress"])
accepted("negative duration", oe(PrinterId="h-d1", DurationSec=-10), printer="h-d1", absent=["print_duration"])
accepted("duration 1e30", oe(PrinterId="h-d2", DurationSec=1e30), printer="h-d2", absent=["print_duration"])
accepted("time remaining 1e30", oe(PrinterId="h-t1", TimeRemainingSec=1e30), printer="h-t1",
         absent=["time_remaining", "eta"])
accepted("time remaining -1", oe(PrinterId="h-t2", TimeRemainingSec=-1), printer="h-t2",
         absent=["time_remaining", "eta"])
accepted("negative layer", oe(PrinterId="h-l1", CurrentLayer=-3, TotalLayers=-1), printer="h-l1",
         absent=["layer", "total_layers"])
accepted("Z 1e30", oe(PrinterId="h-z1", ZOffsetMM=1e30), printer="h-z1", absent=["z"])
accepted("unknown EventType 999", oe(PrinterId="h-u1", EventType=999), printer="h-u1", absent=["state", "progress"])
accepted("EventType -1", oe(PrinterId="h-u2", EventType=-1), printer="h-u2", absent=["state"])
accepted("printer override with topic characters", oe(PrinterId="x"),
         path="/webhook?printer=a%2Fb%2B%23%00&token=" + S)
accepted("custom JSON media type", oe(PrinterId="h-ct"), content_type="application/vnd.api+json", printer="h-ct")
accepted("no Content-Type", oe(PrinterId="h-noct"), content_type="", printer="h-noct")


def toml_str(s):
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\u{o:04X}")
        elif o > 0xFFFF:
            out.append(f"\\U{o:08X}")
        elif o > 0x7E:
            out.append(f"\\u{o:04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def toml_val(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return toml_str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_val(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{toml_str(k)} = {toml_val(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


lines = ["# Generated by tests/hostile/generate.py: edit that file, not this one.",
         "# Each case: a request, the status it must get, and a fragment of its",
         "# JSON error message (or, for 200, what it must and must not publish).", ""]
for c in cases:
    lines.append("[[case]]")
    for k, v in c.items():
        lines.append(f"{k} = {toml_val(v)}")
    lines.append("")
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases.toml")
with open(path, "w") as f:
    f.write("\n".join(lines))
print(f"{len(cases)} cases ({n} accepted) -> {path}")
