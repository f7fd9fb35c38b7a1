//! A set of running validators seen through their APIs: heights, blocks, and the checks that
//! no two of them forked. [`super::testnet::Testnet`] and [`super::netns::NetLab`] hand it out.

use super::testnet::get;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The API URLs of validators 0..n.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    pub urls: Vec<String>,
}

impl Cluster {
    pub fn url(&self, i: usize) -> &str {
        &self.urls[i]
    }

    /// `/api/status` of validator i, or None if it does not answer.
    pub fn status(&self, i: usize) -> Option<Value> {
        match get(self.url(i), "/api/status") {
            Ok((200, v)) => Some(v),
            _ => None,
        }
    }

    pub fn height(&self, i: usize) -> Option<u64> {
        self.status(i).and_then(|s| s["height"].as_u64())
    }

    pub fn heights(&self, nodes: &[usize]) -> Vec<Option<u64>> {
        nodes.iter().map(|&i| self.height(i)).collect()
    }

    /// The heights of `nodes` now; panics naming a node that does not answer.
    pub fn heights_now(&self, nodes: &[usize]) -> Vec<u64> {
        nodes
            .iter()
            .map(|&i| {
                self.height(i)
                    .unwrap_or_else(|| panic!("node{i} does not answer"))
            })
            .collect()
    }

    /// The highest of the heights of `nodes` now.
    pub fn max_height(&self, nodes: &[usize]) -> u64 {
        self.heights_now(nodes).into_iter().max().unwrap_or(0)
    }

    /// Wait until every node in `nodes` reports a height >= `h`; returns their heights.
    pub fn wait_heights(&self, nodes: &[usize], h: u64, timeout: Duration) -> Vec<u64> {
        let start = Instant::now();
        loop {
            let hs = self.heights(nodes);
            if hs.iter().all(|x| x.is_some_and(|x| x >= h)) {
                return hs.into_iter().map(|x| x.unwrap_or(0)).collect();
            }
            assert!(
                start.elapsed() < timeout,
                "nodes {nodes:?} not all at height {h} after {timeout:?}: {hs:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// (block hash, state root) of the block at `h` on node i.
    pub fn block(&self, i: usize, h: u64) -> Option<(String, String)> {
        match get(self.url(i), &format!("/api/blocks/{h}")) {
            Ok((200, v)) => Some((
                v["hash"].as_str()?.to_string(),
                v["state_root"].as_str()?.to_string(),
            )),
            _ => None,
        }
    }

    /// Assert that every node in `nodes` has the same block and state root at `h`.
    pub fn assert_same_block(&self, nodes: &[usize], h: u64) -> (String, String) {
        let blocks: Vec<_> = nodes
            .iter()
            .map(|&i| {
                self.block(i, h)
                    .unwrap_or_else(|| panic!("node{i} has no block {h}"))
            })
            .collect();
        for (k, b) in blocks.iter().enumerate() {
            assert_eq!(
                b, &blocks[0],
                "FORK at height {h}: node{} and node{} differ",
                nodes[0], nodes[k]
            );
        }
        blocks[0].clone()
    }

    /// Assert no two of `nodes` hold different blocks at any height both have (1..=up_to).
    pub fn assert_no_fork(&self, nodes: &[usize], up_to: u64) {
        for h in 1..=up_to {
            let blocks: Vec<_> = nodes.iter().filter_map(|&i| self.block(i, h)).collect();
            for b in &blocks {
                assert_eq!(b, &blocks[0], "FORK at height {h} among nodes {nodes:?}");
            }
        }
    }
}
