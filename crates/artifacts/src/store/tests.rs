use super::*;
use std::sync::Barrier;
use std::thread;

use opal_testkit::seed::bytes;

fn limits() -> Limits {
    Limits {
        max_artifact_bytes: 1 << 20,
        max_total_bytes: 4 << 20,
        max_chunk_bytes: 64 * 1024,
    }
}

fn open(dir: &Path) -> ArtifactStore {
    ArtifactStore::open(dir, limits()).expect("open store")
}

/// Uploads `data` in chunks of `chunk` bytes, returning the last status.
fn upload(
    store: &ArtifactStore,
    data: &[u8],
    chunk: usize,
) -> Result<ArtifactStatus, ArtifactError> {
    let hash = ArtifactHash::of_bytes(data);
    let mut status = store.begin(&hash, data.len() as u64)?;
    let mut at = match status {
        ArtifactStatus::Partial { received, .. } => received as usize,
        _ => return Ok(status),
    };
    while at < data.len() {
        let end = (at + chunk).min(data.len());
        status = store.write_chunk(&hash, at as u64, &data[at..end])?;
        at = end;
    }
    Ok(status)
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn hash_is_plain_blake3_as_b3sum_prints_it() {
    // `printf abc | b3sum`
    assert_eq!(
        ArtifactHash::of_bytes(b"abc").to_hex(),
        "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
    );
}

#[test]
fn bad_hex_is_refused_and_uppercase_normalised() {
    let good = ArtifactHash::of_bytes(b"x").to_hex();
    let cases = [
        String::new(),
        good[..63].to_string(),
        format!("{good}0"),
        format!("{}g", &good[..63]),
        "../../etc/passwd".to_string(),
        format!("{}é", &good[..62]),
    ];
    for bad in cases {
        let e = ArtifactHash::from_hex(&bad).unwrap_err();
        assert_eq!(e.code(), "bad_hash", "{bad:?}");
        assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
    }
    let upper = ArtifactHash::from_hex(&good.to_uppercase()).unwrap();
    assert_eq!(upper.to_hex(), good);
    let json = serde_json::to_string(&upper).unwrap();
    assert_eq!(json, format!("\"{good}\""));
    assert_eq!(serde_json::from_str::<ArtifactHash>(&json).unwrap(), upper);
    assert!(serde_json::from_str::<ArtifactHash>("\"zz\"").is_err());
}

#[test]
fn chunked_upload_lands_in_objects_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = bytes(300_000, 1);
    let hash = ArtifactHash::of_bytes(&data);
    assert_eq!(store.status(&hash).unwrap(), ArtifactStatus::Missing);
    assert_eq!(
        store.begin(&hash, data.len() as u64).unwrap(),
        ArtifactStatus::Partial {
            received: 0,
            size: 300_000
        }
    );
    // `begin` is idempotent.
    assert_eq!(
        store.begin(&hash, data.len() as u64).unwrap(),
        ArtifactStatus::Partial {
            received: 0,
            size: 300_000
        }
    );
    assert_eq!(
        store.write_chunk(&hash, 0, &data[..65536]).unwrap(),
        ArtifactStatus::Partial {
            received: 65536,
            size: 300_000
        }
    );
    assert_eq!(
        store.status(&hash).unwrap(),
        ArtifactStatus::Partial {
            received: 65536,
            size: 300_000
        }
    );
    assert!(!store.has(&hash));
    assert_eq!(store.open_artifact(&hash).unwrap_err().code(), "not_found");
    let mut at = 65536;
    let mut last = None;
    while at < data.len() {
        let end = (at + 65536).min(data.len());
        last = Some(store.write_chunk(&hash, at as u64, &data[at..end]).unwrap());
        at = end;
    }
    assert_eq!(last, Some(ArtifactStatus::Complete { size: 300_000 }));
    assert!(store.has(&hash));
    assert_eq!(fs::read(store.path(&hash)).unwrap(), data);
    let mut read = Vec::new();
    store
        .open_artifact(&hash)
        .unwrap()
        .read_to_end(&mut read)
        .unwrap();
    assert_eq!(read, data);
    assert_eq!(dir_names(&dir.path().join("objects")), vec![hash.to_hex()]);
    assert!(dir_names(&dir.path().join("partial")).is_empty());
    assert_eq!(
        store.list().unwrap(),
        vec![ArtifactInfo {
            hash,
            size: 300_000
        }]
    );
    assert_eq!(store.used_bytes(), 300_000);
    // A retried last chunk is harmless; `begin` on a complete artifact reports it.
    assert_eq!(
        store.write_chunk(&hash, 290_000, &data[290_000..]).unwrap(),
        ArtifactStatus::Complete { size: 300_000 }
    );
    assert_eq!(
        store.begin(&hash, 300_000).unwrap(),
        ArtifactStatus::Complete { size: 300_000 }
    );
}

#[test]
fn upload_resumes_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let data = bytes(200_000, 2);
    let hash = ArtifactHash::of_bytes(&data);
    {
        let store = open(dir.path());
        store.begin(&hash, 200_000).unwrap();
        store.write_chunk(&hash, 0, &data[..60_000]).unwrap();
        store
            .write_chunk(&hash, 60_000, &data[60_000..100_000])
            .unwrap();
        // Dropped here, like a killed process: no finalisation, no cleanup.
    }
    let store = open(dir.path());
    assert_eq!(
        store.used_bytes(),
        200_000,
        "the reservation survives a restart"
    );
    assert_eq!(
        store.status(&hash).unwrap(),
        ArtifactStatus::Partial {
            received: 100_000,
            size: 200_000
        }
    );
    assert_eq!(
        store.begin(&hash, 200_000).unwrap(),
        ArtifactStatus::Partial {
            received: 100_000,
            size: 200_000
        }
    );
    store
        .write_chunk(&hash, 100_000, &data[100_000..160_000])
        .unwrap();
    assert_eq!(
        store.write_chunk(&hash, 160_000, &data[160_000..]).unwrap(),
        ArtifactStatus::Complete { size: 200_000 }
    );
    assert_eq!(fs::read(store.path(&hash)).unwrap(), data);
}

#[test]
fn kill_in_the_middle_of_a_chunk_write_resumes_from_the_bytes_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let data = bytes(150_000, 3);
    let hash = ArtifactHash::of_bytes(&data);
    {
        let store = open(dir.path());
        store.begin(&hash, 150_000).unwrap();
        store.write_chunk(&hash, 0, &data[..50_000]).unwrap();
    }
    // A process killed inside `write_all` leaves a prefix of the chunk it was writing.
    let mut f = OpenOptions::new()
        .append(true)
        .open(dir.path().join("partial").join(hash.to_hex()))
        .unwrap();
    f.write_all(&data[50_000..61_234]).unwrap();
    drop(f);
    let store = open(dir.path());
    assert_eq!(
        store.status(&hash).unwrap(),
        ArtifactStatus::Partial {
            received: 61_234,
            size: 150_000
        }
    );
    let e = store
        .write_chunk(&hash, 50_000, &data[50_000..100_000])
        .unwrap_err();
    assert!(
        matches!(
            e,
            ArtifactError::BadOffset {
                expected: 61_234,
                got: 50_000,
                ..
            }
        ),
        "{e}"
    );
    store
        .write_chunk(&hash, 61_234, &data[61_234..120_000])
        .unwrap();
    assert_eq!(
        store.write_chunk(&hash, 120_000, &data[120_000..]).unwrap(),
        ArtifactStatus::Complete { size: 150_000 }
    );
    assert_eq!(fs::read(store.path(&hash)).unwrap(), data);
}

#[test]
fn kill_after_the_last_chunk_but_before_the_rename_finalises_on_next_touch() {
    let dir = tempfile::tempdir().unwrap();
    let data = bytes(10_000, 4);
    let hash = ArtifactHash::of_bytes(&data);
    {
        let store = open(dir.path());
        store.begin(&hash, 10_000).unwrap();
        store.write_chunk(&hash, 0, &data[..5_000]).unwrap();
    }
    let mut f = OpenOptions::new()
        .append(true)
        .open(dir.path().join("partial").join(hash.to_hex()))
        .unwrap();
    f.write_all(&data[5_000..]).unwrap();
    drop(f);
    let store = open(dir.path());
    assert_eq!(
        store.status(&hash).unwrap(),
        ArtifactStatus::Complete { size: 10_000 }
    );
    assert_eq!(fs::read(store.path(&hash)).unwrap(), data);
}

#[test]
fn kill_between_rename_and_cleanup_is_tidied_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let data = bytes(5_000, 5);
    let hash = {
        let store = open(dir.path());
        store.put_bytes(&data).unwrap()
    };
    // The size file of the finished upload was not removed yet when the process died.
    fs::write(
        dir.path().join("partial").join(format!("{hash}.size")),
        "5000\n",
    )
    .unwrap();
    // And stray leftovers: orphaned partial data, a staging file.
    let orphan = ArtifactHash::of_bytes(b"orphan");
    fs::write(dir.path().join("partial").join(orphan.to_hex()), b"orph").unwrap();
    fs::write(dir.path().join("tmp").join("leftover"), b"junk").unwrap();
    let store = open(dir.path());
    assert!(dir_names(&dir.path().join("partial")).is_empty());
    assert!(dir_names(&dir.path().join("tmp")).is_empty());
    assert_eq!(store.used_bytes(), 5_000);
    assert_eq!(
        store.status(&hash).unwrap(),
        ArtifactStatus::Complete { size: 5_000 }
    );
    assert_eq!(store.status(&orphan).unwrap(), ArtifactStatus::Missing);
}

#[test]
fn offsets_must_continue_the_upload() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = bytes(100_000, 6);
    let hash = ArtifactHash::of_bytes(&data);
    let e = store.write_chunk(&hash, 0, &data[..10]).unwrap_err();
    assert!(matches!(e, ArtifactError::UnknownUpload { .. }), "{e}");
    assert_eq!(e.code(), "unknown_upload");
    store.begin(&hash, 100_000).unwrap();
    store.write_chunk(&hash, 0, &data[..1_000]).unwrap();
    for bad in [0u64, 999, 1_001, 50_000, u64::MAX] {
        let e = store.write_chunk(&hash, bad, &data[..10]).unwrap_err();
        match e {
            ArtifactError::BadOffset { expected, got, .. } => {
                assert_eq!((expected, got), (1_000, bad));
            }
            other => panic!("expected bad_offset, got {other}"),
        }
    }
    let e = store.write_chunk(&hash, 0, &data[..10]).unwrap_err();
    assert_eq!((e.code(), e.status().as_u16()), ("bad_offset", 409));
    // Past the declared size.
    store
        .write_chunk(&hash, 1_000, &data[1_000..60_000])
        .unwrap();
    let e = store
        .write_chunk(&hash, 60_000, &bytes(40_001, 7))
        .unwrap_err();
    assert!(
        matches!(
            e,
            ArtifactError::BeyondSize {
                offset: 60_000,
                len: 40_001,
                size: 100_000,
                ..
            }
        ),
        "{e}"
    );
    // Over the chunk limit.
    let e = store
        .write_chunk(&hash, 60_000, &bytes(65_537, 8))
        .unwrap_err();
    assert!(
        matches!(
            e,
            ArtifactError::ChunkTooLarge {
                len: 65_537,
                limit: 65_536
            }
        ),
        "{e}"
    );
    assert_eq!(e.status().as_u16(), 413);
    // None of the refusals changed anything.
    assert_eq!(
        store.status(&hash).unwrap(),
        ArtifactStatus::Partial {
            received: 60_000,
            size: 100_000
        }
    );
    assert_eq!(
        store.write_chunk(&hash, 60_000, &data[60_000..]).unwrap(),
        ArtifactStatus::Complete { size: 100_000 }
    );
}

#[test]
fn hash_mismatch_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let claimed = ArtifactHash::of_bytes(b"the real model");
    let sent = bytes(70_000, 9);
    store.begin(&claimed, 70_000).unwrap();
    assert_eq!(store.used_bytes(), 70_000);
    store.write_chunk(&claimed, 0, &sent[..40_000]).unwrap();
    let e = store
        .write_chunk(&claimed, 40_000, &sent[40_000..])
        .unwrap_err();
    match &e {
        ArtifactError::HashMismatch { expected, actual } => {
            assert_eq!(*expected, claimed);
            assert_eq!(*actual, ArtifactHash::of_bytes(&sent));
        }
        other => panic!("expected hash_mismatch, got {other}"),
    }
    assert_eq!((e.code(), e.status().as_u16()), ("hash_mismatch", 422));
    assert!(dir_names(&dir.path().join("objects")).is_empty());
    assert!(dir_names(&dir.path().join("partial")).is_empty());
    assert_eq!(store.used_bytes(), 0);
    assert_eq!(store.status(&claimed).unwrap(), ArtifactStatus::Missing);
    // Further chunks for it are for an unknown upload; it can begin again.
    assert_eq!(
        store
            .write_chunk(&claimed, 70_000, b"x")
            .unwrap_err()
            .code(),
        "unknown_upload"
    );
    assert_eq!(
        store.begin(&claimed, 14).unwrap(),
        ArtifactStatus::Partial {
            received: 0,
            size: 14
        }
    );
}

#[test]
fn empty_artifacts_complete_at_begin() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let empty = ArtifactHash::of_bytes(b"");
    assert_eq!(
        store.begin(&empty, 0).unwrap(),
        ArtifactStatus::Complete { size: 0 }
    );
    assert!(store.has(&empty));
    let other = ArtifactHash::of_bytes(b"not empty");
    assert_eq!(store.begin(&other, 0).unwrap_err().code(), "hash_mismatch");
    assert!(!store.has(&other));
}

#[test]
fn size_limits_and_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let h = ArtifactHash::of_bytes(b"big");
    let e = store.begin(&h, (1 << 20) + 1).unwrap_err();
    assert!(
        matches!(
            e,
            ArtifactError::TooLarge {
                size: 1_048_577,
                limit: 1_048_576
            }
        ),
        "{e}"
    );
    assert_eq!((e.code(), e.status().as_u16()), ("too_large", 413));
    assert_eq!(store.begin(&h, u64::MAX).unwrap_err().code(), "too_large");
    assert_eq!(
        store
            .put_bytes(&bytes((1 << 20) + 1, 10))
            .unwrap_err()
            .code(),
        "too_large"
    );
    let src = dir.path().join("big.bin");
    fs::write(&src, bytes((1 << 20) + 1, 11)).unwrap();
    assert_eq!(store.import_file(&src).unwrap_err().code(), "too_large");
    assert!(store.list().unwrap().is_empty());
    assert_eq!(store.used_bytes(), 0);

    store.begin(&h, 1_000).unwrap();
    let e = store.begin(&h, 2_000).unwrap_err();
    assert!(
        matches!(
            e,
            ArtifactError::SizeConflict {
                existing: 1_000,
                requested: 2_000,
                ..
            }
        ),
        "{e}"
    );
    assert!(store.abort(&h).unwrap());
    assert!(!store.abort(&h).unwrap());
    assert_eq!(store.used_bytes(), 0);
    assert_eq!(
        store.begin(&h, 2_000).unwrap(),
        ArtifactStatus::Partial {
            received: 0,
            size: 2_000
        }
    );
    let small = store.put_bytes(b"small").unwrap();
    assert_eq!(store.begin(&small, 6).unwrap_err().code(), "size_conflict");
}

#[test]
fn quota_counts_objects_and_reservations() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(
        dir.path(),
        Limits {
            max_artifact_bytes: 1 << 20,
            max_total_bytes: 2_500_000,
            max_chunk_bytes: 1 << 20,
        },
    )
    .unwrap();
    let a = bytes(1_000_000, 12);
    let b = bytes(1_000_000, 13);
    let c = bytes(1_000_000, 14);
    upload(&store, &a, 1 << 20).unwrap();
    let hb = ArtifactHash::of_bytes(&b);
    store.begin(&hb, 1_000_000).unwrap();
    assert_eq!(store.used_bytes(), 2_000_000);
    let hc = ArtifactHash::of_bytes(&c);
    let e = store.begin(&hc, 1_000_000).unwrap_err();
    assert!(
        matches!(
            e,
            ArtifactError::Quota {
                needed: 1_000_000,
                used: 2_000_000,
                limit: 2_500_000
            }
        ),
        "{e}"
    );
    assert_eq!((e.code(), e.status().as_u16()), ("quota", 507));
    assert_eq!(store.put_bytes(&c).unwrap_err().code(), "quota");
    let src = dir.path().join("c.bin");
    fs::write(&src, &c).unwrap();
    assert_eq!(store.import_file(&src).unwrap_err().code(), "quota");
    // Room for something small. An import reserves its size before it knows the hash, so even
    // a re-import of a held artifact needs the room, but keeps no second copy.
    store.put_bytes(&bytes(400_000, 15)).unwrap();
    let again = dir.path().join("a.bin");
    fs::write(&again, &a).unwrap();
    assert_eq!(store.used_bytes(), 2_400_000);
    assert_eq!(store.import_file(&again).unwrap_err().code(), "quota");
    assert!(store.abort(&hb).unwrap());
    assert_eq!(
        store.import_file(&again).unwrap(),
        ArtifactHash::of_bytes(&a)
    );
    assert_eq!(store.used_bytes(), 1_400_000);
    // Removing an object frees its bytes; the count survives a reopen.
    assert!(store.remove(&ArtifactHash::of_bytes(&a)).unwrap());
    assert_eq!(store.used_bytes(), 400_000);
    store.begin(&hc, 1_000_000).unwrap();
    drop(store);
    let store = ArtifactStore::open(dir.path(), limits()).unwrap();
    assert_eq!(store.used_bytes(), 1_400_000);
}

#[test]
fn import_and_put_bytes_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = bytes(123_457, 16);
    let src = dir.path().join("model.onnx");
    fs::write(&src, &data).unwrap();
    let h1 = store.import_file(&src).unwrap();
    let h2 = store.import_file(&src).unwrap();
    let h3 = store.put_bytes(&data).unwrap();
    assert_eq!(h1, ArtifactHash::of_bytes(&data));
    assert_eq!((h1, h1), (h2, h3));
    assert_eq!(
        store.list().unwrap(),
        vec![ArtifactInfo {
            hash: h1,
            size: 123_457
        }]
    );
    assert_eq!(store.used_bytes(), 123_457);
    assert!(dir_names(&dir.path().join("tmp")).is_empty());
    assert_eq!(
        store
            .import_file(&dir.path().join("missing"))
            .unwrap_err()
            .code(),
        "io"
    );
}

#[test]
fn verify_deletes_a_corrupted_object() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = bytes(20_000, 17);
    let h = store.put_bytes(&data).unwrap();
    store.verify(&h).unwrap();
    let mut corrupted = data.clone();
    corrupted[777] ^= 1;
    fs::write(store.path(&h), &corrupted).unwrap();
    let e = store.verify(&h).unwrap_err();
    assert!(
        matches!(e, ArtifactError::HashMismatch { expected, .. } if expected == h),
        "{e}"
    );
    assert!(!store.has(&h));
    assert_eq!(store.used_bytes(), 0);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let e = ArtifactStore::open(dir.path(), limits())
        .err()
        .expect("second open refused");
    assert_eq!(e.code(), "io");
    drop(store);
    open(dir.path());
}

#[test]
fn concurrent_uploads_of_different_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8u64)
        .map(|i| {
            let store = store.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                let data = bytes(150_000 + i as usize * 1_000, 100 + i);
                barrier.wait();
                let status = upload(&store, &data, 10_000).unwrap();
                assert_eq!(
                    status,
                    ArtifactStatus::Complete {
                        size: data.len() as u64
                    }
                );
                data
            })
        })
        .collect();
    let all: Vec<Vec<u8>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(store.list().unwrap().len(), 8);
    for data in &all {
        let h = ArtifactHash::of_bytes(data);
        assert_eq!(&fs::read(store.path(&h)).unwrap(), data);
    }
    let total: u64 = all.iter().map(|d| d.len() as u64).sum();
    assert_eq!(store.used_bytes(), total);
}

#[test]
fn concurrent_writers_on_one_hash_do_not_corrupt_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let data = Arc::new(bytes(400_000, 18));
    let hash = ArtifactHash::of_bytes(&data);
    let threads = 6;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (store, data, barrier) = (store.clone(), data.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                // Each writer uses its own chunk size, so their chunks overlap differently.
                let chunk = 3_000 + t * 1_711;
                let mut accepted = 0u64;
                let mut status = store.begin(&hash, data.len() as u64).unwrap();
                loop {
                    let at = match status {
                        ArtifactStatus::Complete { .. } => return accepted,
                        ArtifactStatus::Partial { received, .. } => received as usize,
                        ArtifactStatus::Missing => panic!("upload vanished"),
                    };
                    let end = (at + chunk).min(data.len());
                    status = match store.write_chunk(&hash, at as u64, &data[at..end]) {
                        Ok(s) => {
                            accepted += 1;
                            s
                        }
                        Err(ArtifactError::BadOffset { .. }) => store.status(&hash).unwrap(),
                        Err(e) => panic!("unexpected error: {e}"),
                    };
                }
            })
        })
        .collect();
    let accepted: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(accepted > 0);
    assert_eq!(fs::read(store.path(&hash)).unwrap(), *data);
    store.verify(&hash).unwrap();
    assert!(dir_names(&dir.path().join("partial")).is_empty());
    assert_eq!(store.used_bytes(), 400_000);
}

#[test]
fn error_codes_are_stable() {
    let h = ArtifactHash::of_bytes(b"");
    let cases: Vec<(ArtifactError, &str, u16)> = vec![
        (ArtifactError::NotFound { hash: h }, "not_found", 404),
        (
            ArtifactError::UnknownUpload { hash: h },
            "unknown_upload",
            404,
        ),
        (ArtifactError::io("x", io::Error::other("y")), "io", 500),
        (
            ArtifactError::BeyondSize {
                hash: h,
                offset: 0,
                len: 1,
                size: 0,
            },
            "beyond_size",
            400,
        ),
        (
            ArtifactError::SizeConflict {
                hash: h,
                existing: 1,
                requested: 2,
            },
            "size_conflict",
            409,
        ),
        (
            ArtifactError::Unavailable {
                hash: h,
                failures: vec![],
            },
            "unavailable",
            502,
        ),
    ];
    for (e, code, status) in cases {
        assert_eq!((e.code(), e.status().as_u16()), (code, status), "{e}");
    }
}
