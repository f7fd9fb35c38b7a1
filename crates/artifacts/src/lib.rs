//! Opal's artifact store: model and dataset files addressed by their BLAKE3 hash.
//!
//! Design note. Each node keeps artifacts in one directory ([`ArtifactStore`]): complete files
//! under `objects/<hex>`, uploads in progress under `partial/<hex>`. An upload is append-only
//! and resumable: the node tells the client how many bytes it holds and the next chunk must
//! start exactly there. The hash is computed incrementally as chunks arrive, and a file only
//! enters `objects/` by an atomic rename after its hash matched its name and it was synced, so
//! whatever a crash interrupts, `objects/` never holds a wrong or torn file. The same check
//! guards fetching between nodes: a peer's bytes are hashed as they stream in and refused on a
//! mismatch.
//!
//! Three layers, usable apart: the synchronous [`store`] (plain file I/O, no async), the axum
//! [`router`] that the node mounts, and the [`client`] used by the CLI (blocking) and by nodes
//! fetching from peers (async). The protocol is specified in `docs/artifacts.md`.

#![warn(missing_docs)]

pub mod client;
mod error;
mod hash;
pub mod http;
pub mod store;

pub use client::{
    fetch, fetch_into_store_async, hash_file, remote_list, remote_status, upload, FetchReport,
    FetchTarget, MAX_CLIENT_CHUNK,
};
pub use error::ArtifactError;
pub use hash::ArtifactHash;
pub use http::{router, ListReply, StatusReply};
pub use store::{ArtifactInfo, ArtifactStatus, ArtifactStore, Limits};
