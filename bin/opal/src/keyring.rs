//! Where `--from NAME` finds its key: a key file path, the keyring, or the devnet's home.

use anyhow::{bail, Context, Result};
use opal_node::home::KeyFile;
use std::path::{Path, PathBuf};

pub fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub fn default_devnet_home() -> PathBuf {
    home_dir().join(".opal").join("devnet")
}

pub fn keyring_dir(arg: &Option<PathBuf>) -> PathBuf {
    arg.clone()
        .unwrap_or_else(|| home_dir().join(".opal").join("keys"))
}

pub fn valid_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        bail!("key name {name:?} must be 1-64 characters of [A-Za-z0-9_-]");
    }
    Ok(())
}

pub fn resolve(key: &str, keyring: &Option<PathBuf>) -> Result<KeyFile> {
    let p = Path::new(key);
    if p.is_file() {
        return KeyFile::read(p).context("reading the key file");
    }
    let mut tried = vec![];
    if valid_name(key).is_ok() {
        let devnet_home = std::env::var_os("OPAL_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(default_devnet_home);
        for dir in [keyring_dir(keyring), devnet_home.join("keys")] {
            let f = dir.join(format!("{key}.json"));
            if f.is_file() {
                return KeyFile::read(&f).context("reading the key file");
            }
            tried.push(f.display().to_string());
        }
    }
    bail!("no key {key:?}: it is not a key file, and none of {} exists (create one with `opal keys new {key}`)", tried.join(", "))
}
