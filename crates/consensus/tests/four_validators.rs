//! Four validators in one process on 127.0.0.1 ports, each with its own engine (libp2p,
//! WAL, value sync) and on-disk executor: they agree; one stops and the others go on;
//! it restarts and catches up through value sync.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use opal_consensus::context::ValidatorSet;
use opal_consensus::{ConsensusHandle, Validator};

const N: u8 = 4;

struct Node {
    home: PathBuf,
    listen: SocketAddr,
    peers: Vec<SocketAddr>,
    handle: Option<ConsensusHandle>,
    state: std::sync::Arc<std::sync::Mutex<CounterState>>,
}

impl Node {
    async fn start(&mut self, i: u8, validators: &[Validator]) {
        let app = CounterApp::persistent(validators.to_vec(), &self.home.join("app.state"));
        self.state = app.state.clone();
        let cfg = config(&self.home, i, self.listen, self.peers.clone());
        self.handle = Some(opal_consensus::start(cfg, app).await.expect("start"));
    }

    fn height(&self) -> u64 {
        self.state.lock().unwrap().last
    }

    async fn wait(&self, target: u64, timeout: Duration) -> Duration {
        let mut rx = self.handle.as_ref().unwrap().committed_height();
        wait_height(&mut rx, target, timeout).await
    }
}

fn assert_same_prefix(a: &CounterState, b: &CounterState) {
    let upto = a.last.min(b.last);
    for h in 1..=upto {
        assert_eq!(
            a.blocks[&h].0, b.blocks[&h].0,
            "blocks differ at height {h}"
        );
        assert_eq!(
            a.blocks[&h].2, b.blocks[&h].2,
            "state roots differ at height {h}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_agree_tolerate_one_down_and_resync() {
    init_tracing();
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let validators: Vec<Validator> = (0..N).map(validator).collect();
    let addrs: Vec<SocketAddr> = (0..N).map(|_| free_addr()).collect();
    let mut nodes: Vec<Node> = (0..N as usize)
        .map(|i| Node {
            home: dir.path().join(format!("node{i}")),
            listen: addrs[i],
            peers: addrs
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, a)| *a)
                .collect(),
            handle: None,
            state: Default::default(),
        })
        .collect();
    for (i, n) in nodes.iter_mut().enumerate() {
        n.start(i as u8, &validators).await;
    }

    // 1. All four commit the same first 5 blocks.
    for n in &nodes {
        n.wait(5, Duration::from_secs(120)).await;
    }
    eprintln!("4 validators: height 5 after {:?}", t0.elapsed());
    let s0 = nodes[0].state.lock().unwrap().clone();
    check_chain(&s0, &validators);
    for n in &nodes[1..] {
        let s = n.state.lock().unwrap().clone();
        check_chain(&s, &validators);
        assert_same_prefix(&s0, &s);
    }

    // 2. Stop the validator that proposes round 0 of an upcoming height, so that the
    //    others also go through a propose timeout and a round change. The other three
    //    (30 of 40 power) keep committing.
    let vs = ValidatorSet::new(&validators).unwrap();
    let upcoming = nodes.iter().map(Node::height).max().unwrap() + 2;
    let proposer = vs.validators()[vs.proposer_index(upcoming, 0)].address.0;
    let victim = (0..N as usize)
        .find(|i| validators[*i].public_key == proposer)
        .unwrap();
    nodes[victim].handle.take().unwrap().shutdown().await;
    let stopped_at = nodes[victim].height();
    let others: Vec<usize> = (0..N as usize).filter(|i| *i != victim).collect();
    let base = others.iter().map(|i| nodes[*i].height()).max().unwrap();
    let t1 = Instant::now();
    for i in &others {
        nodes[*i].wait(base + 4, Duration::from_secs(120)).await;
    }
    eprintln!(
        "3 of 4 validators: {base} -> {} in {:?} (node {victim} stopped at {stopped_at}, \
         it proposes round 0 of {upcoming})",
        base + 4,
        t1.elapsed()
    );
    let s = nodes[others[0]].state.lock().unwrap().clone();
    assert!(
        s.blocks[&upcoming].1.round >= 1,
        "height {upcoming} should have needed a second round"
    );

    // 3. Restart it on the same home and port: it catches up by value sync.
    nodes[victim].start(victim as u8, &validators).await;
    let target = others.iter().map(|i| nodes[*i].height()).max().unwrap() + 2;
    let t2 = Instant::now();
    nodes[victim].wait(target, Duration::from_secs(120)).await;
    eprintln!(
        "node {victim} caught up from {stopped_at} to {target} in {:?}",
        t2.elapsed()
    );
    // And the network keeps going with all four.
    let target = target + 2;
    for n in &nodes {
        n.wait(target, Duration::from_secs(120)).await;
    }

    for n in nodes.iter_mut() {
        if let Some(h) = n.handle.take() {
            h.shutdown().await;
        }
    }
    let s0 = nodes[0].state.lock().unwrap().clone();
    check_chain(&s0, &validators);
    for n in &nodes[1..] {
        let s = n.state.lock().unwrap().clone();
        check_chain(&s, &validators);
        assert_same_prefix(&s0, &s);
    }
    let s3 = nodes[victim].state.lock().unwrap().clone();
    assert!(s3.last >= target);
    // Heights committed while node 3 was down reached it through sync, with certificates
    // for the same values (the signer subsets may differ between nodes).
    for h in stopped_at + 1..=base {
        assert_eq!(
            s3.blocks[&h].1.value_id, s0.blocks[&h].1.value_id,
            "height {h}"
        );
    }
    eprintln!("four validator test total {:?}", t0.elapsed());
}
