use crate::cli::Output;
use serde_json::Value;

/// Print `v` as JSON, or as `text` for people.
pub fn print(mode: Output, v: &Value, text: impl FnOnce() -> String) {
    match mode {
        Output::Json => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
        Output::Text => println!("{}", text()),
    }
}

/// Print a typed reply as JSON, or as `text` for people.
pub fn print_as<T: serde::Serialize>(
    mode: Output,
    reply: &T,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    print(mode, &serde_json::to_value(reply)?, text);
    Ok(())
}

/// An optional value for people: the value, or `-`.
pub fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), |x| x.to_string())
}

/// A value in its JSON form, on one line (licences, tier lists, shares).
pub fn j<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

pub fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(x) => x.to_string(),
    }
}

/// Write `bytes` to `path` atomically (temporary file, then rename), so a reader never sees a
/// half-written file.
pub fn write_file(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
