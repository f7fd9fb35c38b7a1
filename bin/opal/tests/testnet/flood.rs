//! A flood of connections from unknown peers (issue 24, item 6) on a real network: four
//! validators each in its own network namespace (`NetLab`), and 400 strangers dialing their
//! p2p ports from 40 other addresses on the bridge, with three behaviours: garbage bytes then
//! hold the socket, connect and say nothing (a half-open handshake), connect and hang up at
//! once (churn). While the flood runs a validator is killed and restarted, so it must get back
//! into the mesh through the strangers. Checked: the chain goes on finalizing through the flood,
//! the restarted validator catches up and votes again, and nothing forks. The paces before and
//! during the flood are logged, not asserted (no timing assertions).
//!
//! Needs root, iproute2 and iptables; without them the test says so loudly and returns.

use crate::common::netns::{skip, NetLab};
use crate::netns::{max, min};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SOURCES: usize = 40;
const DIALERS_PER_SOURCE: usize = 10;

#[derive(Default)]
struct Counts {
    dials: AtomicU64,
    connected: AtomicU64,
    refused: AtomicU64,
    bytes: AtomicU64,
}

/// One stranger: dial a validator, misbehave in its way, hang up, again, until `stop`.
async fn stranger(
    from: Ipv4Addr,
    targets: Vec<SocketAddr>,
    kind: usize,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut k = kind;
    while !stop.load(Relaxed) {
        k += 1;
        let target = targets[k % targets.len()];
        counts.dials.fetch_add(1, Relaxed);
        let socket = match tokio::net::TcpSocket::new_v4() {
            Ok(s) => s,
            Err(_) => break,
        };
        if socket.bind((from, 0).into()).is_err() {
            break;
        }
        let conn = tokio::time::timeout(Duration::from_secs(2), socket.connect(target)).await;
        let Ok(Ok(mut conn)) = conn else {
            counts.refused.fetch_add(1, Relaxed);
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        counts.connected.fetch_add(1, Relaxed);
        match kind % 3 {
            0 => {
                // Garbage, then hold the socket until the node closes it (or 3 s).
                let junk: Vec<u8> = (0..16 * 1024u32)
                    .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                    .collect();
                if conn.write_all(&junk).await.is_ok() {
                    counts.bytes.fetch_add(junk.len() as u64, Relaxed);
                }
                let mut buf = [0u8; 1024];
                let _ = tokio::time::timeout(Duration::from_secs(3), async {
                    while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
                })
                .await;
            }
            1 => {
                // Connect and say nothing: the node waits for a handshake that never comes.
                let mut buf = [0u8; 1024];
                let _ = tokio::time::timeout(Duration::from_secs(5), async {
                    while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
                })
                .await;
            }
            _ => {} // churn: hang up at once
        }
        drop(conn);
    }
}

#[test]
fn a_connection_flood_from_strangers_does_not_stop_finality() {
    let mut lab = match NetLab::start(4) {
        Ok(lab) => lab,
        Err(why) => {
            return skip(
                "a_connection_flood_from_strangers_does_not_stop_finality",
                &why,
            )
        }
    };
    let all = [0, 1, 2, 3];
    let window = Duration::from_secs(15);
    let t = Duration::from_secs(90);

    // The pace without a flood.
    let h0 = lab.max_height(&all);
    std::thread::sleep(window);
    let h1 = lab.max_height(&all);
    lab.log(format!(
        "no flood: {} heights in {window:?} ({h0} -> {h1})",
        h1 - h0
    ));

    // The flood: 400 strangers from 40 addresses.
    let sources = lab.stranger_addrs(SOURCES);
    let targets: Vec<SocketAddr> = all.iter().map(|&i| lab.p2p_addr(i)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for (s, from) in sources.iter().enumerate() {
        for d in 0..DIALERS_PER_SOURCE {
            rt.spawn(stranger(
                *from,
                targets.clone(),
                s * DIALERS_PER_SOURCE + d,
                stop.clone(),
                counts.clone(),
            ));
        }
    }
    std::thread::sleep(Duration::from_secs(3)); // let it build up
    let f0 = lab.max_height(&all);
    std::thread::sleep(window);
    let f1 = lab.max_height(&all);
    lab.log(format!(
        "flood of {} strangers from {SOURCES} addresses: {} heights in {window:?} ({f0} -> {f1}); \
         so far {} dials, {} connected, {} refused or timed out",
        SOURCES * DIALERS_PER_SOURCE,
        f1 - f0,
        counts.dials.load(Relaxed),
        counts.connected.load(Relaxed),
        counts.refused.load(Relaxed),
    ));
    assert!(
        f1 > f0 + 2,
        "the flood stopped finality: {f0} -> {f1} in {window:?}"
    );
    assert!(
        counts.connected.load(Relaxed) > 100,
        "the flood hardly reached the validators; this test would prove nothing"
    );

    // A validator restarted during the flood has to get back into the mesh past the strangers.
    lab.kill(3);
    std::thread::sleep(Duration::from_secs(2));
    let down = lab.max_height(&[0, 1, 2]);
    let restarted = Instant::now();
    lab.start_node(3);
    let caught = lab.wait_heights(&[3], down + 3, t);
    lab.log(format!(
        "node3 killed at about {down}, restarted during the flood: at {} after {:.1} s",
        caught[0],
        restarted.elapsed().as_secs_f64()
    ));
    // Its vote counts again: with node0 gone, the other three (node3 among them) must carry
    // the chain on their own, through the flood.
    lab.kill(0);
    let h = lab.max_height(&[1, 2, 3]);
    let hs = lab.wait_heights(&[1, 2, 3], h + 3, t);
    lab.log(format!(
        "node0 killed: node1..3 (node3 voting) went on from {h} to {hs:?} during the flood"
    ));
    lab.start_node(0);

    stop.store(true, Relaxed);
    rt.shutdown_timeout(Duration::from_secs(10));
    lab.log(format!(
        "flood stopped: {} dials, {} connected, {} refused or timed out, {} KiB of garbage",
        counts.dials.load(Relaxed),
        counts.connected.load(Relaxed),
        counts.refused.load(Relaxed),
        counts.bytes.load(Relaxed) / 1024
    ));
    let fin = lab.wait_heights(&all, max(&hs) + 3, t);
    lab.assert_no_fork(&all, min(&fin));
    lab.log(format!("all four at {fin:?} after the flood; no fork"));
}
