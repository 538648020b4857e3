//! A small, strict JSON Schema (draft 2020-12) validator for the keywords perf-runner's
//! schemas use. A keyword it does not know fails the check rather than passing silently.

use serde_json::Value;

/// Annotation keywords: no effect on validity.
const ANNOTATIONS: [&str; 7] = [
    "$schema",
    "$defs",
    "title",
    "description",
    "default",
    "examples",
    "format",
];

/// Errors of `value` against `schema` (`root` resolves `$ref`s), as `path: message`.
pub fn validate(root: &Value, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let s = match schema {
        Value::Bool(true) => return,
        Value::Bool(false) => return errors.push(format!("{path}: no value is allowed")),
        Value::Object(s) => s,
        _ => return errors.push(format!("{path}: the schema is not an object")),
    };
    for (k, rule) in s {
        match k.as_str() {
            k if ANNOTATIONS.contains(&k) => {}
            "$ref" => {
                let target = rule
                    .as_str()
                    .and_then(|r| r.strip_prefix("#"))
                    .and_then(|p| root.pointer(p));
                match target {
                    Some(t) => validate(root, t, value, path, errors),
                    None => errors.push(format!("{path}: unresolved $ref {rule}")),
                }
            }
            "type" => {
                let types: Vec<&str> = match rule {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => vec![],
                };
                if !types.iter().any(|t| is_type(value, t)) {
                    errors.push(format!("{path}: {value} is not of type {rule}"));
                }
            }
            "properties" => {
                if let (Some(props), Some(obj)) = (rule.as_object(), value.as_object()) {
                    for (name, sub) in props {
                        if let Some(v) = obj.get(name) {
                            validate(root, sub, v, &format!("{path}.{name}"), errors);
                        }
                    }
                }
            }
            "required" => {
                if let Some(obj) = value.as_object() {
                    for name in rule
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                    {
                        if !obj.contains_key(name) {
                            errors.push(format!("{path}: missing required {name}"));
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(obj) = value.as_object() {
                    let known = s.get("properties").and_then(Value::as_object);
                    for (name, v) in obj {
                        if !known.is_some_and(|p| p.contains_key(name)) {
                            validate(root, rule, v, &format!("{path}.{name}"), errors);
                        }
                    }
                }
            }
            "items" => {
                for (i, v) in value.as_array().into_iter().flatten().enumerate() {
                    validate(root, rule, v, &format!("{path}[{i}]"), errors);
                }
            }
            "minItems" | "maxItems" => {
                if let (Some(n), Some(a)) = (rule.as_u64(), value.as_array()) {
                    let len = a.len() as u64;
                    if (k == "minItems" && len < n) || (k == "maxItems" && len > n) {
                        errors.push(format!("{path}: {len} items breaks {k} {n}"));
                    }
                }
            }
            "minimum" | "maximum" => {
                if let (Some(n), Some(v)) = (rule.as_f64(), value.as_f64()) {
                    if (k == "minimum" && v < n) || (k == "maximum" && v > n) {
                        errors.push(format!("{path}: {v} breaks {k} {n}"));
                    }
                }
            }
            "enum" => {
                if !rule.as_array().is_some_and(|a| a.contains(value)) {
                    errors.push(format!("{path}: {value} is not one of {rule}"));
                }
            }
            "const" => {
                if rule != value {
                    errors.push(format!("{path}: {value} is not {rule}"));
                }
            }
            "anyOf" | "oneOf" => {
                let passing = rule
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|sub| {
                        let mut e = Vec::new();
                        validate(root, sub, value, path, &mut e);
                        e.is_empty()
                    })
                    .count();
                if passing == 0 || (k == "oneOf" && passing > 1) {
                    errors.push(format!("{path}: {passing} branches of {k} match {value}"));
                }
            }
            "allOf" => {
                for sub in rule.as_array().into_iter().flatten() {
                    validate(root, sub, value, path, errors);
                }
            }
            other => errors.push(format!("{path}: unknown keyword {other}")),
        }
    }
}

fn is_type(v: &Value, t: &str) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

/// Panic with every error of `value` against `schema`.
pub fn assert_valid(name: &str, schema: &Value, value: &Value) {
    let mut errors = Vec::new();
    validate(schema, schema, value, "$", &mut errors);
    assert!(errors.is_empty(), "{name}: {}", errors.join("\n"));
}

/// The validator rejects what it should (so a pass means something).
pub fn self_check() {
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/A"}, "b": {"type": ["string", "null"]}},
        "required": ["a"],
        "additionalProperties": false,
        "$defs": {"A": {"type": "integer", "minimum": 0}}
    });
    let check = |v: Value| {
        let mut e = Vec::new();
        validate(&schema, &schema, &v, "$", &mut e);
        e.len()
    };
    assert_eq!(check(serde_json::json!({"a": 1, "b": null})), 0);
    assert_eq!(check(serde_json::json!({"a": -1})), 1);
    assert_eq!(check(serde_json::json!({"a": 1.5})), 1);
    assert_eq!(check(serde_json::json!({"b": "x"})), 1);
    assert_eq!(check(serde_json::json!({"a": 1, "c": 2})), 1);
    let mut e = Vec::new();
    let odd = serde_json::json!({"patternProperties": {}});
    validate(&odd, &odd, &serde_json::json!({}), "$", &mut e);
    assert_eq!(e.len(), 1, "unknown keywords fail");
}
