//! The on-disk, content-addressed artifact store.
//!
//! Layout under the store's directory (see `docs/artifacts.md`):
//!
//! ```text
//! LOCK               held (flock) while a store is open: one process per directory
//! objects/<hex>      complete artifacts, named by their BLAKE3 hash; never written in place
//! partial/<hex>      bytes received so far for an upload in progress (append-only)
//! partial/<hex>.size the size declared when the upload began, in decimal
//! tmp/               staging for imports and metadata; emptied on open
//! ```
//!
//! An artifact only ever enters `objects/` by a rename after its bytes were hashed and found
//! equal to its name and synced to disk, so a crash at any point leaves either no object or a
//! complete, verified one.

use crate::error::ArtifactError;
use crate::hash::ArtifactHash;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Size limits enforced by an [`ArtifactStore`] (and by the HTTP router built on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// The largest single artifact accepted, in bytes.
    pub max_artifact_bytes: u64,
    /// The most bytes the store holds: complete artifacts plus the declared sizes of uploads in
    /// progress (an upload reserves its whole size when it begins).
    pub max_total_bytes: u64,
    /// The largest chunk accepted by [`ArtifactStore::write_chunk`], and the HTTP body limit of
    /// one chunk request.
    pub max_chunk_bytes: u64,
}

impl Limits {
    /// The default chunk limit: 4 MiB.
    pub const DEFAULT_CHUNK_BYTES: u64 = 4 << 20;
}

impl Default for Limits {
    /// 8 GiB per artifact, 64 GiB in all, 4 MiB per chunk.
    fn default() -> Self {
        Limits {
            max_artifact_bytes: 8 << 30,
            max_total_bytes: 64 << 30,
            max_chunk_bytes: Limits::DEFAULT_CHUNK_BYTES,
        }
    }
}

/// Where an artifact stands in a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ArtifactStatus {
    /// Stored, verified and readable.
    Complete {
        /// Its size in bytes.
        size: u64,
    },
    /// An upload is in progress.
    Partial {
        /// Bytes received so far: the offset the next chunk must start at.
        received: u64,
        /// The size declared when the upload began.
        size: u64,
    },
    /// Neither stored nor being uploaded.
    Missing,
}

/// A complete artifact as listed by [`ArtifactStore::list`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactInfo {
    /// Its content hash.
    pub hash: ArtifactHash,
    /// Its size in bytes.
    pub size: u64,
}

/// A content-addressed store of model and dataset files in one directory.
///
/// Shareable across threads (`Arc<ArtifactStore>`): uploads of different hashes proceed in
/// parallel; operations on one hash are serialised, so two writers racing on the same upload
/// cannot interleave bytes (the loser gets [`ArtifactError::BadOffset`]).
pub struct ArtifactStore {
    root: PathBuf,
    objects: PathBuf,
    partial: PathBuf,
    tmp: PathBuf,
    limits: Limits,
    inner: Mutex<Inner>,
    /// Held for the store's lifetime; its lock keeps a second process out of the directory.
    _lock: File,
}

struct Inner {
    /// One slot per hash currently being operated on or uploaded.
    slots: HashMap<ArtifactHash, Arc<Mutex<Slot>>>,
    /// Bytes of complete objects plus declared sizes of partial uploads.
    used: u64,
}

#[derive(Default)]
struct Slot {
    /// Set when the slot left the map; a thread that finds it set must look the hash up again.
    dead: bool,
    /// The upload in progress, once loaded into memory.
    upload: Option<Upload>,
}

/// An upload in progress, with the hasher state over the bytes received so far.
struct Upload {
    size: u64,
    received: u64,
    hasher: blake3::Hasher,
    file: File,
}

impl Upload {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(self.received))?;
        self.file.write_all(data)?;
        // Durable before it is acknowledged: `received` never runs ahead of the disk.
        self.file.sync_data()?;
        self.hasher.update(data);
        self.received += data.len() as u64;
        Ok(())
    }
}

const READ_BUF: usize = 1 << 20;

impl ArtifactStore {
    /// Opens (creating if needed) the store in `dir` with the given limits.
    ///
    /// Takes an exclusive lock on `dir/LOCK` (a second open of the same directory, from this
    /// process or another, fails with [`ArtifactError::Io`] while the first is alive), empties
    /// `tmp/`, removes leftovers of interrupted finalisations and orphaned partial files, and
    /// counts the bytes in use. Uploads in progress are kept and resume where they stopped;
    /// their hasher state is rebuilt from disk when each is next touched.
    pub fn open(dir: &Path, limits: Limits) -> Result<ArtifactStore, ArtifactError> {
        let objects = dir.join("objects");
        let partial = dir.join("partial");
        let tmp = dir.join("tmp");
        for d in [dir, &objects, &partial, &tmp] {
            fs::create_dir_all(d)
                .map_err(|e| ArtifactError::io(format!("creating {}", d.display()), e))?;
        }
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| ArtifactError::io(format!("opening {}", lock_path.display()), e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(ArtifactError::io(
                    format!("locking {}", lock_path.display()),
                    io::Error::new(
                        io::ErrorKind::WouldBlock,
                        "the artifact store is already open (in this or another process)",
                    ),
                ))
            }
            Err(fs::TryLockError::Error(e)) => {
                // Some file systems have no locks; the store still works, only unguarded.
                tracing::warn!(path = %lock_path.display(), error = %e, "cannot lock the artifact store");
            }
        }

        for entry in read_dir(&tmp)? {
            let p = entry.path();
            let r = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            r.map_err(|e| ArtifactError::io(format!("clearing {}", p.display()), e))?;
        }

        let mut used: u64 = 0;
        for entry in read_dir(&objects)? {
            let name = entry.file_name();
            let Some(_) = name.to_str().and_then(|n| ArtifactHash::from_hex(n).ok()) else {
                tracing::warn!(path = %entry.path().display(), "ignoring a stray file in objects/");
                continue;
            };
            let meta = entry
                .metadata()
                .map_err(|e| ArtifactError::io(format!("reading {}", entry.path().display()), e))?;
            used = used.saturating_add(meta.len());
        }

        let store = ArtifactStore {
            root: dir.to_path_buf(),
            objects,
            partial,
            tmp,
            limits,
            inner: Mutex::new(Inner {
                slots: HashMap::new(),
                used: 0,
            }),
            _lock: lock,
        };

        for entry in read_dir(&store.partial)? {
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if let Some(stem) = name.strip_suffix(".size") {
                let Ok(hash) = ArtifactHash::from_hex(stem) else {
                    continue;
                };
                if store.object_path(&hash).exists() {
                    // Killed between the rename into objects/ and the cleanup.
                    store.remove_partial_files(&hash)?;
                    continue;
                }
                match store.read_declared_size(&hash)? {
                    Some(size) => used = used.saturating_add(size),
                    None => store.remove_partial_files(&hash)?,
                }
            } else if let Ok(hash) = ArtifactHash::from_hex(&name) {
                if !store.meta_path(&hash).exists() {
                    tracing::warn!(path = %path.display(), "removing partial data without its size file");
                    remove_if_exists(&path)?;
                }
            }
        }
        sync_dir(&store.partial)?;
        store.inner.lock().used = used;
        Ok(store)
    }

    /// The limits this store enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// Bytes in use: complete artifacts plus the declared sizes of uploads in progress.
    pub fn used_bytes(&self) -> u64 {
        self.inner.lock().used
    }

    /// Begins (or looks up) the upload of the artifact `hash` of `size` bytes.
    ///
    /// Idempotent: on an upload already in progress it returns [`ArtifactStatus::Partial`] with
    /// the bytes received so far, which is where the next chunk must start; on an artifact
    /// already stored it returns [`ArtifactStatus::Complete`]. A new upload reserves `size`
    /// bytes against [`Limits::max_total_bytes`]. A size of 0 completes at once (if `hash` is
    /// the hash of no bytes).
    ///
    /// Errors: [`ArtifactError::TooLarge`], [`ArtifactError::Quota`],
    /// [`ArtifactError::SizeConflict`] when the hash is already held or being uploaded with a
    /// different size, [`ArtifactError::HashMismatch`] for an empty artifact with another hash.
    pub fn begin(&self, hash: &ArtifactHash, size: u64) -> Result<ArtifactStatus, ArtifactError> {
        if size > self.limits.max_artifact_bytes {
            return Err(ArtifactError::TooLarge {
                size,
                limit: self.limits.max_artifact_bytes,
            });
        }
        self.with_slot(hash, |slot| {
            let existing = match self.resolve(hash, slot)? {
                Resolved::Complete(existing) => Some(existing),
                Resolved::Active => slot.upload.as_ref().map(|u| u.size),
                Resolved::Missing => None,
            };
            if let Some(existing) = existing {
                if existing != size {
                    return Err(ArtifactError::SizeConflict {
                        hash: *hash,
                        existing,
                        requested: size,
                    });
                }
                return self.settle(hash, slot);
            }
            self.reserve(size)?;
            match self.create_partial(hash, size) {
                Ok(upload) => slot.upload = Some(upload),
                Err(e) => {
                    // Leave no size file behind that would count the bytes again on reopen.
                    let _ = self.remove_partial_files(hash);
                    self.release(size);
                    return Err(e);
                }
            }
            self.settle(hash, slot)
        })
    }

    /// Appends `data` at `offset` to the upload of `hash`; when the upload then holds its
    /// declared size, finalises it (see below) and returns [`ArtifactStatus::Complete`].
    ///
    /// Uploads are append-only: `offset` must equal the bytes received so far (else
    /// [`ArtifactError::BadOffset`], carrying the expected offset), and the chunk must not pass
    /// the declared size ([`ArtifactError::BeyondSize`]) nor [`Limits::max_chunk_bytes`]
    /// ([`ArtifactError::ChunkTooLarge`]). A chunk for a hash with no upload is
    /// [`ArtifactError::UnknownUpload`]; one for an artifact already complete is answered with
    /// its status and the bytes are ignored (so a retried last chunk is harmless).
    ///
    /// Each chunk is synced to disk before this returns. Finalising compares the BLAKE3 hash,
    /// computed incrementally as chunks arrive, with `hash`: on a match the file is synced and
    /// renamed into `objects/`; on a mismatch the partial upload is deleted, its reservation
    /// released, and [`ArtifactError::HashMismatch`] returned.
    pub fn write_chunk(
        &self,
        hash: &ArtifactHash,
        offset: u64,
        data: &[u8],
    ) -> Result<ArtifactStatus, ArtifactError> {
        let len = data.len() as u64;
        if len > self.limits.max_chunk_bytes {
            return Err(ArtifactError::ChunkTooLarge {
                len,
                limit: self.limits.max_chunk_bytes,
            });
        }
        self.with_slot(hash, |slot| {
            match self.resolve(hash, slot)? {
                Resolved::Complete(size) => return Ok(ArtifactStatus::Complete { size }),
                Resolved::Missing => return Err(ArtifactError::UnknownUpload { hash: *hash }),
                Resolved::Active => {}
            }
            let Some(up) = slot.upload.as_mut() else {
                return Err(ArtifactError::UnknownUpload { hash: *hash });
            };
            if offset != up.received {
                return Err(ArtifactError::BadOffset {
                    hash: *hash,
                    expected: up.received,
                    got: offset,
                });
            }
            if offset.checked_add(len).is_none_or(|end| end > up.size) {
                return Err(ArtifactError::BeyondSize {
                    hash: *hash,
                    offset,
                    len,
                    size: up.size,
                });
            }
            if len > 0 {
                if let Err(e) = up.append(data) {
                    // Put the file back to what is acknowledged; failing that, forget the
                    // in-memory state so it is rebuilt from whatever the disk holds.
                    if up.file.set_len(up.received).is_err() {
                        slot.upload = None;
                    }
                    return Err(ArtifactError::io(format!("writing a chunk of {hash}"), e));
                }
            }
            self.settle(hash, slot)
        })
    }

    /// Where `hash` stands: complete, partially uploaded, or missing.
    ///
    /// After a restart, the first call on a partial upload re-reads its bytes to rebuild the
    /// hasher (and finalises it if the process was killed just before doing so).
    pub fn status(&self, hash: &ArtifactHash) -> Result<ArtifactStatus, ArtifactError> {
        self.with_slot(hash, |slot| match self.resolve(hash, slot)? {
            Resolved::Complete(size) => Ok(ArtifactStatus::Complete { size }),
            Resolved::Missing => Ok(ArtifactStatus::Missing),
            Resolved::Active => self.settle(hash, slot),
        })
    }

    /// Whether a complete artifact `hash` is stored.
    pub fn has(&self, hash: &ArtifactHash) -> bool {
        self.object_path(hash).is_file()
    }

    /// Opens the complete artifact `hash` for reading ([`ArtifactError::NotFound`] if it is not
    /// stored, including while it is still being uploaded).
    pub fn open_artifact(&self, hash: &ArtifactHash) -> Result<File, ArtifactError> {
        let path = self.object_path(hash);
        File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ArtifactError::NotFound { hash: *hash }
            } else {
                ArtifactError::io(format!("opening {}", path.display()), e)
            }
        })
    }

    /// The path where the complete artifact `hash` lives (or would live): `objects/<hex>`.
    /// Treat it as read-only; check [`has`](ArtifactStore::has) before relying on it.
    pub fn path(&self, hash: &ArtifactHash) -> PathBuf {
        self.object_path(hash)
    }

    /// The size of the complete artifact `hash`, if stored.
    pub fn size(&self, hash: &ArtifactHash) -> Result<Option<u64>, ArtifactError> {
        self.object_size(hash)
    }

    /// All complete artifacts, sorted by hash.
    pub fn list(&self) -> Result<Vec<ArtifactInfo>, ArtifactError> {
        let mut out = Vec::new();
        for entry in read_dir(&self.objects)? {
            let Some(hash) = entry
                .file_name()
                .to_str()
                .and_then(|n| ArtifactHash::from_hex(n).ok())
            else {
                continue;
            };
            match entry.metadata() {
                Ok(m) => out.push(ArtifactInfo {
                    hash,
                    size: m.len(),
                }),
                // Removed between the listing and the stat.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(ArtifactError::io(
                        format!("reading {}", entry.path().display()),
                        e,
                    ))
                }
            }
        }
        out.sort_by_key(|i| i.hash);
        Ok(out)
    }

    /// Copies the local file at `path` into the store and returns its hash (registering a model
    /// or dataset that is already on this machine). Reads the file once, hashing while copying.
    /// Idempotent: importing the same bytes twice keeps one copy.
    pub fn import_file(&self, path: &Path) -> Result<ArtifactHash, ArtifactError> {
        let mut src = File::open(path)
            .map_err(|e| ArtifactError::io(format!("opening {}", path.display()), e))?;
        let declared = src
            .metadata()
            .map_err(|e| ArtifactError::io(format!("reading {}", path.display()), e))?
            .len();
        if declared > self.limits.max_artifact_bytes {
            return Err(ArtifactError::TooLarge {
                size: declared,
                limit: self.limits.max_artifact_bytes,
            });
        }
        self.reserve(declared)?;
        let mut reserved = declared;
        let r = self.import_reader(&mut src, &mut reserved, &path.display().to_string());
        if r.is_err() {
            self.release(reserved);
        }
        r
    }

    /// Stores `bytes` as an artifact and returns their hash. Idempotent.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<ArtifactHash, ArtifactError> {
        let hash = ArtifactHash::of_bytes(bytes);
        let size = bytes.len() as u64;
        if self.has(&hash) {
            return Ok(hash);
        }
        if size > self.limits.max_artifact_bytes {
            return Err(ArtifactError::TooLarge {
                size,
                limit: self.limits.max_artifact_bytes,
            });
        }
        self.reserve(size)?;
        let r = (|| {
            let mut tmp = self.tmp_file()?;
            tmp.write_all(bytes)
                .and_then(|_| tmp.as_file().sync_all())
                .map_err(|e| ArtifactError::io("writing a staged artifact", e))?;
            let staged = tmp.into_temp_path();
            self.publish(&staged, &hash, size)?;
            let _ = staged.keep();
            Ok(())
        })();
        if r.is_err() {
            self.release(size);
        }
        r.map(|_| hash)
    }

    /// Re-reads the complete artifact `hash` and checks it still hashes to its name. A corrupted
    /// file (bit rot, tampering) is deleted and reported as [`ArtifactError::HashMismatch`].
    pub fn verify(&self, hash: &ArtifactHash) -> Result<(), ArtifactError> {
        let mut f = self.open_artifact(hash)?;
        let mut hasher = blake3::Hasher::new();
        let ctx = || format!("reading {}", self.object_path(hash).display());
        let size =
            copy_hashing(&mut f, None, &mut hasher).map_err(|e| ArtifactError::io(ctx(), e))?;
        let actual = ArtifactHash::from(hasher.finalize());
        if actual != *hash {
            tracing::warn!(%hash, %actual, "deleting a corrupted artifact");
            self.remove_object(hash, size)?;
            return Err(ArtifactError::HashMismatch {
                expected: *hash,
                actual,
            });
        }
        Ok(())
    }

    /// Deletes the complete artifact `hash`; returns whether it was stored. Readers that already
    /// opened it keep reading the old file (on Unix).
    pub fn remove(&self, hash: &ArtifactHash) -> Result<bool, ArtifactError> {
        match self.object_size(hash)? {
            Some(size) => self.remove_object(hash, size),
            None => Ok(false),
        }
    }

    /// Discards the upload in progress for `hash`, if any, releasing its reservation; returns
    /// whether there was one.
    pub fn abort(&self, hash: &ArtifactHash) -> Result<bool, ArtifactError> {
        self.with_slot(hash, |slot| {
            let size = match slot.upload.take() {
                Some(up) => Some(up.size),
                None => self.read_declared_size(hash)?,
            };
            let Some(size) = size else {
                return Ok(false);
            };
            self.remove_partial_files(hash)?;
            self.release(size);
            Ok(true)
        })
    }

    // ---- internals -------------------------------------------------------------------------

    fn object_path(&self, hash: &ArtifactHash) -> PathBuf {
        self.objects.join(hash.to_hex())
    }

    fn data_path(&self, hash: &ArtifactHash) -> PathBuf {
        self.partial.join(hash.to_hex())
    }

    fn meta_path(&self, hash: &ArtifactHash) -> PathBuf {
        self.partial.join(format!("{}.size", hash.to_hex()))
    }

    fn object_size(&self, hash: &ArtifactHash) -> Result<Option<u64>, ArtifactError> {
        let path = self.object_path(hash);
        match fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ArtifactError::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Runs `f` with the one live slot for `hash` locked; drops the slot afterwards unless an
    /// upload is loaded in it.
    fn with_slot<R>(
        &self,
        hash: &ArtifactHash,
        f: impl FnOnce(&mut Slot) -> Result<R, ArtifactError>,
    ) -> Result<R, ArtifactError> {
        loop {
            let arc = {
                let mut inner = self.inner.lock();
                inner.slots.entry(*hash).or_default().clone()
            };
            // Lock order: a slot, then `inner`; `inner` is never held while waiting for a slot.
            let mut slot = arc.lock();
            if slot.dead {
                continue;
            }
            let r = f(&mut slot);
            if slot.upload.is_none() {
                slot.dead = true;
                let mut inner = self.inner.lock();
                if inner
                    .slots
                    .get(hash)
                    .is_some_and(|cur| Arc::ptr_eq(cur, &arc))
                {
                    inner.slots.remove(hash);
                }
            }
            return r;
        }
    }

    /// Finds what the store holds for `hash`, loading a partial upload from disk into the slot
    /// when it is not in memory yet.
    fn resolve(&self, hash: &ArtifactHash, slot: &mut Slot) -> Result<Resolved, ArtifactError> {
        if slot.upload.is_some() {
            return Ok(Resolved::Active);
        }
        if let Some(size) = self.object_size(hash)? {
            if self.meta_path(hash).exists() {
                // Leftover of a finalisation cut short; the object is what counts.
                self.remove_partial_files(hash)?;
            }
            return Ok(Resolved::Complete(size));
        }
        let Some(size) = self.read_declared_size(hash)? else {
            return Ok(Resolved::Missing);
        };
        let path = self.data_path(hash);
        let ctx = || format!("reloading {}", path.display());
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| ArtifactError::io(ctx(), e))?;
        let len = file
            .metadata()
            .map_err(|e| ArtifactError::io(ctx(), e))?
            .len();
        if len > size {
            tracing::warn!(%hash, len, size, "partial upload longer than declared; restarting it");
            file.set_len(0).map_err(|e| ArtifactError::io(ctx(), e))?;
        }
        file.seek(SeekFrom::Start(0))
            .map_err(|e| ArtifactError::io(ctx(), e))?;
        let mut hasher = blake3::Hasher::new();
        let received = if len > size {
            0
        } else {
            copy_hashing(&mut file, None, &mut hasher).map_err(|e| ArtifactError::io(ctx(), e))?
        };
        slot.upload = Some(Upload {
            size,
            received,
            hasher,
            file,
        });
        Ok(Resolved::Active)
    }

    /// The status of the loaded upload in `slot`, finalising it when all bytes are in.
    fn settle(
        &self,
        hash: &ArtifactHash,
        slot: &mut Slot,
    ) -> Result<ArtifactStatus, ArtifactError> {
        let Some(up) = slot.upload.as_ref() else {
            return match self.object_size(hash)? {
                Some(size) => Ok(ArtifactStatus::Complete { size }),
                None => Ok(ArtifactStatus::Missing),
            };
        };
        if up.received < up.size {
            return Ok(ArtifactStatus::Partial {
                received: up.received,
                size: up.size,
            });
        }
        let Some(up) = slot.upload.take() else {
            return Ok(ArtifactStatus::Missing);
        };
        self.finalize(hash, up)
    }

    fn finalize(&self, hash: &ArtifactHash, up: Upload) -> Result<ArtifactStatus, ArtifactError> {
        let actual = ArtifactHash::from(up.hasher.finalize());
        let size = up.size;
        if actual != *hash {
            drop(up.file);
            self.remove_partial_files(hash)?;
            self.release(size);
            tracing::info!(expected = %hash, %actual, "upload refused: hash mismatch");
            return Err(ArtifactError::HashMismatch {
                expected: *hash,
                actual,
            });
        }
        let data = self.data_path(hash);
        up.file
            .sync_all()
            .map_err(|e| ArtifactError::io(format!("syncing {}", data.display()), e))?;
        drop(up.file);
        self.publish(&data, hash, size)?;
        remove_if_exists(&self.meta_path(hash))?;
        sync_dir(&self.partial)?;
        Ok(ArtifactStatus::Complete { size })
    }

    /// Moves a synced, verified file into `objects/`. The bytes were already reserved; if
    /// another path stored the same artifact first, `from` is deleted as a duplicate and its
    /// reservation released. On failure `from` is left where it is.
    fn publish(&self, from: &Path, hash: &ArtifactHash, size: u64) -> Result<(), ArtifactError> {
        let dest = self.object_path(hash);
        {
            let mut inner = self.inner.lock();
            if dest.exists() {
                inner.used = inner.used.saturating_sub(size);
                drop(inner);
                return remove_if_exists(from);
            }
            fs::rename(from, &dest)
                .map_err(|e| ArtifactError::io(format!("renaming into {}", dest.display()), e))?;
        }
        sync_dir(&self.objects)
    }

    fn create_partial(&self, hash: &ArtifactHash, size: u64) -> Result<Upload, ArtifactError> {
        // The size file first: data without it is an orphan and is removed on open.
        let mut tmp = self.tmp_file()?;
        writeln!(tmp, "{size}")
            .and_then(|_| tmp.as_file().sync_all())
            .map_err(|e| ArtifactError::io("writing an upload's size file", e))?;
        let meta = self.meta_path(hash);
        tmp.persist(&meta)
            .map_err(|e| ArtifactError::io(format!("creating {}", meta.display()), e.error))?;
        let data = self.data_path(hash);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&data)
            .map_err(|e| ArtifactError::io(format!("creating {}", data.display()), e))?;
        sync_dir(&self.partial)?;
        Ok(Upload {
            size,
            received: 0,
            hasher: blake3::Hasher::new(),
            file,
        })
    }

    fn read_declared_size(&self, hash: &ArtifactHash) -> Result<Option<u64>, ArtifactError> {
        let path = self.meta_path(hash);
        match fs::read_to_string(&path) {
            Ok(s) => match s.trim().parse::<u64>() {
                Ok(size) => Ok(Some(size)),
                Err(_) => {
                    tracing::warn!(path = %path.display(), "unreadable size file; dropping the upload");
                    Ok(None)
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ArtifactError::io(format!("reading {}", path.display()), e)),
        }
    }

    fn remove_partial_files(&self, hash: &ArtifactHash) -> Result<(), ArtifactError> {
        // Data first: a size file without data is a valid empty upload, the reverse an orphan.
        remove_if_exists(&self.data_path(hash))?;
        remove_if_exists(&self.meta_path(hash))?;
        sync_dir(&self.partial)
    }

    fn remove_object(&self, hash: &ArtifactHash, size: u64) -> Result<bool, ArtifactError> {
        let path = self.object_path(hash);
        let mut inner = self.inner.lock();
        match fs::remove_file(&path) {
            Ok(()) => {
                inner.used = inner.used.saturating_sub(size);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ArtifactError::io(format!("removing {}", path.display()), e)),
        }
    }

    fn reserve(&self, size: u64) -> Result<(), ArtifactError> {
        let mut inner = self.inner.lock();
        let limit = self.limits.max_total_bytes;
        match inner.used.checked_add(size) {
            Some(total) if total <= limit => {
                inner.used = total;
                Ok(())
            }
            _ => Err(ArtifactError::Quota {
                needed: size,
                used: inner.used,
                limit,
            }),
        }
    }

    fn release(&self, size: u64) {
        let mut inner = self.inner.lock();
        inner.used = inner.used.saturating_sub(size);
    }

    fn tmp_file(&self) -> Result<tempfile::NamedTempFile, ArtifactError> {
        tempfile::NamedTempFile::new_in(&self.tmp)
            .map_err(|e| ArtifactError::io(format!("creating a file in {}", self.tmp.display()), e))
    }

    /// Copies `src` into a staged file while hashing, then publishes it. `reserved` tracks the
    /// bytes reserved so far (the caller releases them on error).
    fn import_reader(
        &self,
        src: &mut File,
        reserved: &mut u64,
        what: &str,
    ) -> Result<ArtifactHash, ArtifactError> {
        let mut tmp = self.tmp_file()?;
        let mut hasher = blake3::Hasher::new();
        let copied = copy_hashing(src, Some(tmp.as_file_mut()), &mut hasher)
            .map_err(|e| ArtifactError::io(format!("importing {what}"), e))?;
        if copied != *reserved {
            // The file changed while it was read; account for what was actually copied.
            if copied > self.limits.max_artifact_bytes {
                return Err(ArtifactError::TooLarge {
                    size: copied,
                    limit: self.limits.max_artifact_bytes,
                });
            }
            if copied > *reserved {
                self.reserve(copied - *reserved)?;
            } else {
                self.release(*reserved - copied);
            }
            *reserved = copied;
        }
        tmp.as_file()
            .sync_all()
            .map_err(|e| ArtifactError::io(format!("syncing the import of {what}"), e))?;
        let hash = ArtifactHash::from(hasher.finalize());
        let staged = tmp.into_temp_path();
        self.publish(&staged, &hash, copied)?;
        let _ = staged.keep();
        Ok(hash)
    }
}

enum Resolved {
    Complete(u64),
    Active,
    Missing,
}

/// Reads `src` to its end, feeding `hasher` and copying into `dst` if given; returns the bytes read.
pub(crate) fn copy_hashing(
    src: &mut impl Read,
    mut dst: Option<&mut File>,
    hasher: &mut blake3::Hasher,
) -> io::Result<u64> {
    let mut buf = vec![0u8; READ_BUF];
    let mut total: u64 = 0;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        if let Some(d) = dst.as_deref_mut() {
            d.write_all(&buf[..n])?;
        }
        total += n as u64;
    }
}

fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>, ArtifactError> {
    let ctx = || format!("listing {}", dir.display());
    fs::read_dir(dir)
        .map_err(|e| ArtifactError::io(ctx(), e))?
        .map(|e| e.map_err(|e| ArtifactError::io(ctx(), e)))
        .collect()
}

fn remove_if_exists(path: &Path) -> Result<(), ArtifactError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ArtifactError::io(format!("removing {}", path.display()), e)),
    }
}

/// Makes a directory's entries (a rename, a new or removed file) durable.
fn sync_dir(dir: &Path) -> Result<(), ArtifactError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| ArtifactError::io(format!("syncing {}", dir.display()), e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests;
