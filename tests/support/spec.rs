//! Validates JSON response bodies against Twilio's OpenAPI spec (tests/fixtures/).
//!
//! Strict, beyond plain JSON Schema, because clients rely on it (CONTRACT.md §1): every
//! property of a schema must be present (null when empty, and only where `nullable`), no
//! property outside the schema may appear, `date-time` is Twilio's `YYYY-MM-DDTHH:MM:SSZ`,
//! `uri` is absolute http(s). Error bodies are checked against Twilio's error shape.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use regex::Regex;
use serde_json::{Map, Value};

static SPEC: OnceLock<Value> = OnceLock::new();

fn spec() -> &'static Value {
    SPEC.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/serverless_v1.openapi.json"
        );
        let text = std::fs::read_to_string(path).expect("spec fixture is readable");
        serde_json::from_str(&text).expect("spec fixture is JSON")
    })
}

/// `pattern` compiled once per test process (the spec's patterns and the checker's own).
fn regex(pattern: &str) -> Regex {
    static CACHE: OnceLock<Mutex<HashMap<String, Regex>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .expect("regex cache");
    cache
        .entry(pattern.to_owned())
        .or_insert_with(|| Regex::new(pattern).expect("pattern"))
        .clone()
}

fn resolve(schema: &Value) -> &Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.strip_prefix("#/components/schemas/").expect("local ref");
            &spec()["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// The spec path template matching a request path (`/v1/Services/ZS…` → `/v1/Services/{Sid}`).
fn template_for(path: &str) -> Option<&'static str> {
    let segs: Vec<&str> = path.split('/').collect();
    let paths = spec()["paths"].as_object().expect("paths");
    paths.keys().map(String::as_str).find(|t| {
        let tsegs: Vec<&str> = t.split('/').collect();
        tsegs.len() == segs.len()
            && tsegs
                .iter()
                .zip(&segs)
                .all(|(t, s)| (t.starts_with('{') && t.ends_with('}')) || t == s)
    })
}

/// The response schema of the operation answering `method path` with `status`.
fn response_schema(method: &str, path: &str, status: u16) -> Result<&'static Value, String> {
    let is_upload = method == "POST" && path.ends_with("/Versions");
    if is_upload {
        // The upload endpoints are not in the spec (CONTRACT.md §5): the body is the version
        // as GET returns it.
        let name = if path.contains("/Functions/") {
            "serverless.v1.service.function.function_version"
        } else {
            "serverless.v1.service.asset.asset_version"
        };
        return Ok(&spec()["components"]["schemas"][name]);
    }
    let t = template_for(path).ok_or_else(|| format!("no spec path matches {path}"))?;
    let op = &spec()["paths"][t][method.to_ascii_lowercase()];
    if op.is_null() {
        return Err(format!("spec has no {method} {t}"));
    }
    let schema = &op["responses"][status.to_string()]["content"]["application/json"]["schema"];
    if schema.is_null() {
        return Err(format!(
            "spec has no {status} JSON response for {method} {t}"
        ));
    }
    Ok(schema)
}

fn check(schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    let schema = resolve(schema);
    if v.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) {
            errs.push(format!("{at}: null where the schema is not nullable"));
        }
        return;
    }
    let ty = schema.get("type").and_then(Value::as_str);
    match ty {
        Some("string") => {
            let Some(s) = v.as_str() else {
                errs.push(format!("{at}: {v} is not a string"));
                return;
            };
            if let Some(en) = schema.get("enum").and_then(Value::as_array) {
                // The toolkit already sends runtimes newer than the spec's enum (node24);
                // sigil accepts and echoes them, so `nodeNN` passes for the runtime enum.
                let runtime_ext =
                    en.iter().any(|e| e == "node22") && regex(r"^node\d+$").is_match(s);
                if !en.iter().any(|e| e == s) && !runtime_ext {
                    errs.push(format!("{at}: {s:?} is not one of {en:?}"));
                }
            }
            if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
                if !regex(p).is_match(s) {
                    errs.push(format!("{at}: {s:?} does not match {p}"));
                }
            }
            if let Some(n) = schema.get("minLength").and_then(Value::as_u64) {
                if (s.chars().count() as u64) < n {
                    errs.push(format!("{at}: shorter than {n}"));
                }
            }
            if let Some(n) = schema.get("maxLength").and_then(Value::as_u64) {
                if (s.chars().count() as u64) > n {
                    errs.push(format!("{at}: longer than {n}"));
                }
            }
            match schema.get("format").and_then(Value::as_str) {
                Some("date-time")
                    if !regex(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$").is_match(s) =>
                {
                    errs.push(format!("{at}: {s:?} is not YYYY-MM-DDTHH:MM:SSZ"));
                }
                Some("uri") => check_uri(s, at, errs),
                _ => {}
            }
        }
        Some("integer") => {
            if !v.is_i64() && !v.is_u64() {
                errs.push(format!("{at}: {v} is not an integer"));
            }
        }
        Some("boolean") => {
            if !v.is_boolean() {
                errs.push(format!("{at}: {v} is not a boolean"));
            }
        }
        Some("array") => {
            let Some(items) = v.as_array() else {
                errs.push(format!("{at}: {v} is not an array"));
                return;
            };
            let item_schema = schema
                .get("items")
                .filter(|s| s.as_object().is_some_and(|o| !o.is_empty()));
            if let Some(is) = item_schema {
                for (i, item) in items.iter().enumerate() {
                    check(is, item, &format!("{at}[{i}]"), errs);
                }
            }
        }
        Some("object") | None => {
            let Some(obj) = v.as_object() else {
                errs.push(format!("{at}: {v} is not an object"));
                return;
            };
            match schema.get("properties").and_then(Value::as_object) {
                Some(props) => check_object(props, obj, at, errs),
                None if schema.get("format").and_then(Value::as_str) == Some("uri-map") => {
                    for (k, u) in obj {
                        match u.as_str() {
                            Some(s) => check_uri(s, &format!("{at}.{k}"), errs),
                            None => errs.push(format!("{at}.{k}: not a URL string")),
                        }
                    }
                }
                None => {}
            }
        }
        Some(other) => errs.push(format!("{at}: unknown schema type {other}")),
    }
}

fn check_object(
    props: &Map<String, Value>,
    obj: &Map<String, Value>,
    at: &str,
    errs: &mut Vec<String>,
) {
    for (name, s) in props {
        match obj.get(name) {
            Some(v) => check(s, v, &format!("{at}.{name}"), errs),
            None => errs.push(format!("{at}: missing property {name}")),
        }
    }
    for name in obj.keys() {
        if !props.contains_key(name) {
            errs.push(format!("{at}: property {name} is not in the spec"));
        }
    }
}

fn check_uri(s: &str, at: &str, errs: &mut Vec<String>) {
    if !(s.starts_with("http://") || s.starts_with("https://")) || s.contains(' ') {
        errs.push(format!("{at}: {s:?} is not an absolute http(s) URL"));
    }
}

/// Twilio's error body: exactly `code`, `message`, `more_info`, `status` (= the HTTP status).
fn check_error(status: u16, body: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let Some(obj) = body.as_object() else {
        return vec![format!("error body {body} is not an object")];
    };
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    if keys != ["code", "message", "more_info", "status"] {
        errs.push(format!("error keys {keys:?}"));
    }
    if !body["code"].is_u64() {
        errs.push("code is not an integer".into());
    }
    if body["message"].as_str().is_none_or(str::is_empty) {
        errs.push("message is empty".into());
    }
    let code = body["code"].as_u64().unwrap_or(0);
    if body["more_info"] != Value::String(format!("https://www.twilio.com/docs/errors/{code}")) {
        errs.push(format!("more_info is {}", body["more_info"]));
    }
    if body["status"].as_u64() != Some(u64::from(status)) {
        errs.push(format!("status field {} != HTTP {status}", body["status"]));
    }
    errs
}

/// Validates one response body; panics with every deviation found.
pub fn validate(method: &str, path: &str, status: u16, body: &Value) {
    let errs = if status >= 400 {
        check_error(status, body)
    } else {
        match response_schema(method, path, status) {
            Ok(schema) => {
                let mut errs = Vec::new();
                check(schema, body, "$", &mut errs);
                if let Some(meta) = body.get("meta") {
                    let key = meta["key"].as_str().unwrap_or_default();
                    if body.get(key).is_none_or(|v| !v.is_array()) {
                        errs.push(format!("meta.key {key:?} does not name the list"));
                    }
                }
                errs
            }
            Err(e) => vec![e],
        }
    };
    assert!(
        errs.is_empty(),
        "{method} {path} -> {status}: body does not match the spec:\n  {}\nbody: {body}",
        errs.join("\n  ")
    );
}
