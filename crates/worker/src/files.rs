//! A directory of files named by request id (`<hex id>.bin`): the reveal data and the zk
//! evidence the worker keeps until the ledger, or the caller, can no longer ask for them.

use crate::fsio;
use opal_types::Hash;
use std::path::PathBuf;

pub struct IdFiles {
    dir: PathBuf,
}

impl IdFiles {
    pub fn open(dir: PathBuf) -> std::io::Result<IdFiles> {
        std::fs::create_dir_all(&dir)?;
        Ok(IdFiles { dir })
    }

    pub fn path(&self, id: &Hash) -> PathBuf {
        self.dir.join(format!("{}.bin", id.to_hex()))
    }

    /// Write the file of `id` durably (atomic replace).
    pub fn put(&self, id: &Hash, bytes: &[u8]) -> std::io::Result<()> {
        fsio::write_atomic(&self.path(id), bytes)
    }

    pub fn get(&self, id: &Hash) -> Option<Vec<u8>> {
        std::fs::read(self.path(id)).ok()
    }

    /// Up to `limit` files, with their ids and their age at clock reading `now_ms` (files
    /// whose name is not an id are left alone).
    pub fn list(&self, now_ms: u64, limit: usize) -> Vec<(Hash, u64)> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return vec![];
        };
        dir.flatten()
            .take(limit)
            .filter_map(|e| {
                let id = e
                    .file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".bin"))
                    .and_then(|h| Hash::from_hex(h).ok())?;
                let modified_ms = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()?
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()?
                    .as_millis() as u64;
                Some((id, now_ms.saturating_sub(modified_ms)))
            })
            .collect()
    }

    pub fn remove(&self, id: &Hash) {
        let _ = std::fs::remove_file(self.path(id));
    }
}
