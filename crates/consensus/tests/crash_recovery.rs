//! SIGKILL a single-validator node (a child process running this same test binary) at
//! several points of its block cycle; every restart must continue the chain from the last
//! committed height with valid certificates and no gap or fork.

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use borsh::BorshDeserialize;
use common::*;

const HOME_VAR: &str = "OPAL_CRASH_HOME";
const PORT_VAR: &str = "OPAL_CRASH_PORT";

/// The node process; only does something when started by the parent test.
#[test]
#[ignore = "child process of sigkill_at_any_point_then_restart_continues_the_chain, not a check on its own"]
fn crash_child_node() {
    let Ok(home) = std::env::var(HOME_VAR) else {
        return;
    };
    let port: u16 = std::env::var(PORT_VAR).unwrap().parse().unwrap();
    let home = std::path::PathBuf::from(home);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        init_tracing();
        let app = CounterApp::persistent(vec![validator(0)], &home.join("app.state"));
        let listen = format!("127.0.0.1:{port}").parse().unwrap();
        // No commit delay: blocks follow each other back to back, so that a kill can land in
        // any phase (proposal built, votes in the WAL, decided, committed, ...).
        let mut cfg = config(&home, 0, listen, vec![]);
        cfg.timeouts.commit = Duration::ZERO;
        let _handle = opal_consensus::start(cfg, app).await.expect("start");
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    });
}

/// Kills the child if the test panics, so no node process outlives it.
struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child(home: &Path, port: u16) -> KillOnDrop {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.join("child.log"))
        .unwrap();
    Command::new(std::env::current_exe().unwrap())
        .args(["crash_child_node", "--exact", "--ignored", "--nocapture"])
        .env(HOME_VAR, home)
        .env(PORT_VAR, port.to_string())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .map(KillOnDrop)
        .expect("spawn child")
}

fn read_state(home: &Path) -> CounterState {
    match std::fs::read(home.join("app.state")) {
        Ok(b) => CounterState::try_from_slice(&b).expect("state file is always complete"),
        Err(_) => CounterState::default(),
    }
}

fn wait_file_height(home: &Path, target: u64, timeout: Duration) -> CounterState {
    let start = Instant::now();
    loop {
        let s = read_state(home);
        if s.last >= target {
            return s;
        }
        assert!(
            start.elapsed() < timeout,
            "height {target} not reached in {timeout:?} (at {}); see {}",
            s.last,
            home.join("child.log").display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigkill_at_any_point_then_restart_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let port = free_addr().port();
    let validators = vec![validator(0)];
    let mut last = 0;
    // Kill at different offsets (blocks come every few milliseconds).
    let offsets_ms = [0u64, 3, 7, 11, 17, 23, 29, 37, 1, 5, 13, 19];
    for (i, off) in offsets_ms.iter().enumerate() {
        let mut child = spawn_child(home, port);
        let s = wait_file_height(home, last + 2, Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(*off));
        child.0.kill().expect("SIGKILL"); // SIGKILL on Unix
        child.0.wait().unwrap();
        let s_after = read_state(home);
        assert!(s_after.last >= s.last);
        check_chain(&s_after, &validators);
        assert_eq!(s_after.blocks.len() as u64, s_after.last, "gap in chain");
        eprintln!(
            "kill {i} at +{off} ms: committed {} (was {last})",
            s_after.last
        );
        last = s_after.last;
    }
    // A final run continues, then stops.
    let mut child = spawn_child(home, port);
    let s = wait_file_height(home, last + 3, Duration::from_secs(60));
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    check_chain(&read_state(home), &validators);
    assert!(s.last >= last + 3);
    let log = std::fs::read_to_string(home.join("child.log")).unwrap_or_default();
    eprintln!(
        "child logs: {} x 'replaying stored proposals', {} x 're-proposing', {} x WAL replay lines",
        log.matches("replaying stored proposals").count(),
        log.matches("re-proposing the block already built").count(),
        log.matches("WAL").count(),
    );
}
