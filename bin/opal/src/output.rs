use crate::cli::Output;
use serde_json::Value;

/// Print `v` as JSON, or as `text` for people.
pub fn print(mode: Output, v: &Value, text: impl FnOnce() -> String) {
    match mode {
        Output::Json => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
        Output::Text => println!("{}", text()),
    }
}

pub fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(x) => x.to_string(),
    }
}
