//! A process really killed (SIGKILL) in the middle of an upload: the store it leaves behind
//! holds no corrupt object and the upload resumes to completion.

use opal_artifacts::{ArtifactHash, ArtifactStatus, ArtifactStore, Limits};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "OPAL_ARTIFACTS_CRASH_CHILD";
const SIZE: usize = 16 << 20;
const CHUNK: usize = 16 * 1024;

use opal_testkit::seed::bytes;

fn limits() -> Limits {
    Limits {
        max_artifact_bytes: 64 << 20,
        max_total_bytes: 256 << 20,
        max_chunk_bytes: 1 << 20,
    }
}

/// Uploads from wherever the store stands to the end.
fn upload_rest(store: &ArtifactStore, data: &[u8]) -> ArtifactStatus {
    let hash = ArtifactHash::of_bytes(data);
    let mut status = store.begin(&hash, data.len() as u64).unwrap();
    while let ArtifactStatus::Partial { received, .. } = status {
        let at = received as usize;
        let end = (at + CHUNK).min(data.len());
        status = store.write_chunk(&hash, at as u64, &data[at..end]).unwrap();
    }
    status
}

/// The child: uploads one large artifact chunk by chunk until it is killed.
fn child(dir: &Path) {
    let store = ArtifactStore::open(dir, limits()).unwrap();
    upload_rest(&store, &bytes(SIZE, 42));
}

#[test]
fn an_upload_killed_with_sigkill_resumes_and_never_leaves_a_corrupt_object() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let data = bytes(SIZE, 42);
    let hash = ArtifactHash::of_bytes(&data);
    let mut proc = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "an_upload_killed_with_sigkill_resumes_and_never_leaves_a_corrupt_object",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some bytes are in (or when it is done, on a very fast disk).
    let partial = dir.join("partial").join(hash.to_hex());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let len = fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        if len >= 1 << 20 || proc.try_wait().unwrap().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the child never started writing");
        std::thread::sleep(Duration::from_millis(5));
    }
    proc.kill().ok();
    proc.wait().unwrap();

    // Whatever the moment of the kill: objects/ holds nothing, or exactly the right bytes.
    for entry in fs::read_dir(dir.join("objects")).unwrap() {
        let entry = entry.unwrap();
        assert_eq!(entry.file_name().to_string_lossy(), hash.to_hex());
        assert_eq!(fs::read(entry.path()).unwrap(), data);
    }
    let store = ArtifactStore::open(&dir, limits()).unwrap();
    match store.status(&hash).unwrap() {
        ArtifactStatus::Partial { received, size } => {
            assert_eq!(size, SIZE as u64);
            assert!(received > 0);
            let on_disk = fs::read(&partial).unwrap();
            assert_eq!(
                on_disk,
                data[..received as usize],
                "the partial is a prefix"
            );
        }
        ArtifactStatus::Complete { .. } => {}
        ArtifactStatus::Missing => panic!("the upload was lost"),
    }
    assert_eq!(
        upload_rest(&store, &data),
        ArtifactStatus::Complete { size: SIZE as u64 }
    );
    assert_eq!(fs::read(store.path(&hash)).unwrap(), data);
    assert!(fs::read_dir(dir.join("partial")).unwrap().next().is_none());
}
