//! Compact tool definitions: what a model reads in `tools/list`, without what only a validator
//! would miss.
//!
//! Every client pays for the tool list in tokens before its first call. schemars writes an
//! optional parameter as `"type": ["integer", "null"], "default": null, "format": "uint64",
//! "minimum": 0`, an optional enum as `anyOf: [{$ref}, {type: null}]` over a `$defs` entry, and
//! keeps the line breaks of wrapped doc comments. A parameter that is not `required` is already
//! optional, and a missing value is how a client leaves it out, so all of that is rewritten here
//! to the plain type, once, for every server: 53 KB of the hub's read-only surface became about
//! half of it with no change in what a call accepts (serde still reads `null` as absent).
//!
//! Output schemas are the other half; they are served only when asked for
//! ([`set_output_schemas`], `--output-schemas`): the structured result is returned either way.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};

static OUTPUT_SCHEMAS: AtomicBool = AtomicBool::new(false);

/// Whether `tools/list` carries each tool's output schema (off by default: clients get the
/// structured result without it, and the schema costs as many tokens as the rest of the tool).
/// One server runs per process, so this is a process setting, made once from the flags.
pub fn set_output_schemas(on: bool) {
    OUTPUT_SCHEMAS.store(on, Ordering::Relaxed);
}

/// See [`set_output_schemas`].
pub fn output_schemas() -> bool {
    OUTPUT_SCHEMAS.load(Ordering::Relaxed)
}

/// Deepest `$ref` chain inlined; deeper (a recursive type) keeps its `$defs`.
const MAX_INLINE_DEPTH: usize = 8;

/// Rewrites a JSON Schema object in place into its compact form: `$defs` inlined, nullable unions
/// reduced to the type, `"default": null`, `format`, `"minimum": 0`, `$schema` and the root title
/// dropped, enums of documented constants written as `enum`, and descriptions on one line.
pub fn compact_schema(schema: &mut Map<String, Value>) {
    let defs = schema.remove("$defs").or_else(|| schema.remove("definitions"));
    schema.remove("$schema");
    schema.remove("title");
    let defs = match defs {
        Some(Value::Object(d)) => d,
        _ => Map::new(),
    };
    let mut unresolved = false;
    compact_object(schema, &defs, 0, &mut unresolved);
    if unresolved {
        schema.insert("$defs".to_owned(), Value::Object(defs));
    }
}

/// A description on one line, with the doc comment's wrapping undone.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn compact_value(v: &mut Value, defs: &Map<String, Value>, depth: usize, unresolved: &mut bool) {
    match v {
        Value::Object(o) => compact_object(o, defs, depth, unresolved),
        Value::Array(items) => {
            for item in items {
                compact_value(item, defs, depth, unresolved);
            }
        }
        _ => {}
    }
}

fn compact_object(o: &mut Map<String, Value>, defs: &Map<String, Value>, mut depth: usize, unresolved: &mut bool) {
    depth = inline_ref(o, defs, depth, unresolved);
    // `anyOf`/`oneOf` of one schema and `null`: the schema, keeping this level's description.
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(options)) = o.get(key) {
            let non_null: Vec<&Value> = options.iter().filter(|s| !is_null_schema(s)).collect();
            if non_null.len() == 1 && options.len() == 2 {
                let only = non_null[0].clone();
                o.remove(key);
                if let Value::Object(inner) = only {
                    for (k, val) in inner {
                        o.entry(k).or_insert(val);
                    }
                }
                depth = inline_ref(o, defs, depth, unresolved);
            }
        }
    }
    // `type: [X, "null"]` → `X`.
    if let Some(Value::Array(types)) = o.get("type") {
        let mut kept: Vec<Value> = types.iter().filter(|t| t.as_str() != Some("null")).cloned().collect();
        let single = (kept.len() == 1).then(|| kept.pop()).flatten();
        o.insert("type".to_owned(), single.unwrap_or(Value::Array(kept)));
    }
    if o.get("default") == Some(&Value::Null) {
        o.remove("default");
    }
    o.remove("format");
    o.remove("nullable");
    if o.get("minimum").and_then(Value::as_f64) == Some(0.0) {
        o.remove("minimum");
    }
    // An enum of documented string constants (schemars' `oneOf` of `const`s): the constants.
    if let Some(Value::Array(options)) = o.get("oneOf") {
        let consts: Option<Vec<Value>> = options
            .iter()
            .map(|s| s.get("const").filter(|c| c.is_string() && s.get("type").is_none_or(|t| t == "string")).cloned())
            .collect();
        if let Some(consts) = consts.filter(|c| !c.is_empty()) {
            o.remove("oneOf");
            o.insert("type".to_owned(), Value::String("string".to_owned()));
            o.insert("enum".to_owned(), Value::Array(consts));
        }
    }
    if let Some(Value::String(d)) = o.get_mut("description") {
        *d = one_line(d);
    }
    for (key, val) in o.iter_mut() {
        match key.as_str() {
            // Values, not schemas.
            "enum" | "const" | "default" | "examples" | "required" | "description" => {}
            "properties" | "patternProperties" | "$defs" => {
                if let Value::Object(props) = val {
                    for p in props.values_mut() {
                        compact_value(p, defs, depth, unresolved);
                    }
                }
            }
            _ => compact_value(val, defs, depth, unresolved),
        }
    }
}

/// Replaces `{"$ref": "#/$defs/X", …}` by the definition, this level's keys winning, and returns
/// the inlining depth its children are compacted at (each path inlines at most
/// [`MAX_INLINE_DEPTH`] definitions, so a recursive type stops).
fn inline_ref(o: &mut Map<String, Value>, defs: &Map<String, Value>, mut depth: usize, unresolved: &mut bool) -> usize {
    while let Some(Value::String(target)) = o.get("$ref") {
        let name = target.strip_prefix("#/$defs/").or_else(|| target.strip_prefix("#/definitions/"));
        let Some(Value::Object(def)) = name.and_then(|n| defs.get(n)) else { break };
        if depth >= MAX_INLINE_DEPTH {
            *unresolved = true;
            break;
        }
        depth += 1;
        o.remove("$ref");
        for (k, val) in def.clone() {
            // A referenced type's own description says what the type is; the field's says what it is for.
            o.entry(k).or_insert(val);
        }
    }
    depth
}

fn is_null_schema(s: &Value) -> bool {
    s.get("type").and_then(Value::as_str) == Some("null") || s.get("const") == Some(&Value::Null)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn compact(v: Value) -> Value {
        let Value::Object(mut o) = v else { panic!("not an object") };
        compact_schema(&mut o);
        Value::Object(o)
    }

    #[test]
    fn optional_parameters_lose_their_null_noise() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Args",
            "type": "object",
            "properties": {
                "limit": {"default": null, "description": "Most lines\nto return.", "format": "uint64",
                          "minimum": 0, "type": ["integer", "null"]},
                "offset": {"type": "integer", "minimum": -5, "format": "int64"},
                "mode": {"anyOf": [{"$ref": "#/$defs/Mode"}, {"type": "null"}], "description": "How."},
                "path": {"type": "string"}
            },
            "required": ["path"],
            "$defs": {"Mode": {"description": "A mode.", "oneOf": [
                {"const": "a", "type": "string", "description": "A."},
                {"const": "b", "type": "string", "description": "B."}
            ]}}
        });
        assert_eq!(
            compact(schema),
            json!({
                "type": "object",
                "properties": {
                    "limit": {"description": "Most lines to return.", "type": "integer"},
                    "offset": {"type": "integer", "minimum": -5},
                    "mode": {"description": "How.", "type": "string", "enum": ["a", "b"]},
                    "path": {"type": "string"}
                },
                "required": ["path"]
            })
        );
    }

    #[test]
    fn nested_references_are_inlined_and_recursion_keeps_its_definitions() {
        let schema = json!({
            "type": "object",
            "properties": {"items": {"type": ["array", "null"], "items": {"$ref": "#/$defs/Item"}}},
            "$defs": {"Item": {"type": "object", "properties": {"n": {"type": "integer", "format": "uint"}}}}
        });
        assert_eq!(
            compact(schema),
            json!({"type": "object", "properties": {"items": {"type": "array", "items":
                {"type": "object", "properties": {"n": {"type": "integer"}}}}}})
        );
        let recursive = json!({
            "type": "object",
            "properties": {"node": {"$ref": "#/$defs/Node"}},
            "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}}
        });
        let out = compact(recursive);
        assert!(out.get("$defs").is_some(), "{out}");
    }
}
