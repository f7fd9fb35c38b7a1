//! The worker end to end over a test chain and a manual clock: serve the demo model, keep the
//! receipt through a restart, settle it in a block the test executes, forget it once paid;
//! refuse a request the clock says has expired.

use opal_artifacts::ArtifactStore;
use opal_infer::Tensor;
use opal_ledger::canonical;
use opal_testkit::{caller, demo_model_file, node, offer_demo_model, owner, TestChain};
use opal_types::{Action, Amount, Hash, SecretKey, Tier};
use opal_worker::{Chain, ChainError, Committed, InferenceService, ManualClock, Options};
use parking_lot::Mutex;
use std::sync::Arc;

/// A [`Chain`] over a [`TestChain`]: what the worker submits waits in `submitted` until the
/// test puts it in a block.
struct TestNet {
    c: Mutex<TestChain>,
    submitted: Mutex<Vec<(SecretKey, Action)>>,
    chain_id: String,
}

impl Chain for TestNet {
    fn chain_id(&self) -> &str {
        &self.chain_id
    }
    fn max_tx_bytes(&self) -> u64 {
        opal_ledger::Params::default().max_tx_bytes as u64
    }
    fn committed(&self) -> Result<Committed, ChainError> {
        let c = self.c.lock();
        Ok(Committed {
            state: c.overlay(),
            height: c.height,
        })
    }
    fn block_time_ms(&self, height: u64) -> Result<u64, ChainError> {
        let c = self.c.lock();
        assert_eq!(
            height, c.height,
            "the worker asks the time of the committed height"
        );
        Ok(c.time_ms)
    }
    fn is_committed(&self, _tx: &Hash) -> Result<bool, ChainError> {
        Ok(false)
    }
    fn submit(&self, key: &SecretKey, action: Action) -> Result<Hash, ChainError> {
        let mut s = self.submitted.lock();
        s.push((key.clone(), action));
        Ok(Hash([s.len() as u8; 32]))
    }
}

impl TestNet {
    /// Execute everything submitted in one block; each transaction's code.
    fn mine(&self) -> Vec<Option<String>> {
        let subs: Vec<_> = self.submitted.lock().drain(..).collect();
        let mut c = self.c.lock();
        let mut offsets = std::collections::BTreeMap::new();
        let txs = subs
            .into_iter()
            .map(|(k, a)| {
                let off = offsets.entry(k.address()).or_insert(0u64);
                let tx = c.tx(&k, *off, a);
                *off += 1;
                tx
            })
            .collect();
        c.run(txs)
    }
}

struct World {
    net: Arc<TestNet>,
    clock: Arc<ManualClock>,
    artifacts: Arc<ArtifactStore>,
    dir: tempfile::TempDir,
}

fn world() -> World {
    let mut c = TestChain::new();
    let file = demo_model_file();
    offer_demo_model(
        &mut c,
        [&owner(), &node(), &caller()],
        &file,
        vec![Tier::Signed, Tier::Replay],
        None,
        500_000,
    );
    let dir = tempfile::tempdir().unwrap();
    let artifacts =
        Arc::new(ArtifactStore::open(&dir.path().join("artifacts"), Default::default()).unwrap());
    artifacts.put_bytes(&file).unwrap();
    let clock = Arc::new(ManualClock::new(c.time_ms));
    World {
        net: Arc::new(TestNet {
            chain_id: c.chain_id.clone(),
            c: Mutex::new(c),
            submitted: Mutex::new(vec![]),
        }),
        clock,
        artifacts,
        dir,
    }
}

impl World {
    fn open(&self) -> Arc<InferenceService> {
        InferenceService::open(
            node(),
            self.net.clone(),
            self.clock.clone(),
            self.artifacts.clone(),
            self.dir.path().join("data"),
            Options {
                quant_threads: 1,
                fault_wrong_output_bps: None,
            },
        )
        .unwrap()
    }

    fn request(&self, salt: u64, inputs: &[Tensor]) -> opal_types::SignedRequest {
        let mut req = opal_testkit::demo_request(&self.net.c.lock(), salt);
        req.input_hash = opal_infer::tensors_hash(inputs);
        req.sign(&caller())
    }
}

fn digit() -> Vec<Tensor> {
    let v: Vec<f32> = (0..64).map(|i| (i % 17) as f32 / 16.0).collect();
    vec![Tensor::from_f32(vec![1, 64], v).unwrap()]
}

#[test]
fn a_served_receipt_survives_a_restart_and_is_settled_then_forgotten() {
    let w = world();
    let svc = w.open();
    let inputs = digit();
    let sr = w.request(1, &inputs);
    let served = svc.serve(sr.clone(), inputs.clone()).unwrap();
    assert_eq!(served.price, Amount(190));
    // The output is the canonical function's, the one the ledger re-executes.
    let model = canonical::load_model(&demo_model_file()).unwrap();
    let want = canonical::run(
        &model,
        &[inputs[0].canonical_bytes()],
        u64::MAX,
        Default::default(),
    )
    .unwrap();
    assert_eq!(served.outputs[0].canonical_bytes(), want[0]);
    // Served once: the same request again is a replay.
    let again = svc.serve(sr, inputs).unwrap_err();
    assert_eq!(again.code(), "replayed");
    drop(svc);

    // A restart reloads the receipt from the log.
    let svc = w.open();
    assert_eq!(svc.pending_count(), 1);
    svc.settle_pass().unwrap();
    assert!(matches!(
        w.net.submitted.lock().as_slice(),
        [(_, Action::SettleReceipts { receipts })] if receipts.len() == 1
    ));
    assert_eq!(w.net.mine(), vec![None]);
    let paid = {
        let c = w.net.c.lock();
        opal_ledger::components::inference::settled(&c.overlay(), &served.request_id).unwrap()
    };
    assert_eq!(paid.map(|s| s.price), Some(Amount(190)));
    // The next pass sees it paid and forgets it, on disk too.
    svc.settle_pass().unwrap();
    assert_eq!(svc.pending_count(), 0);
    drop(svc);
    assert_eq!(w.open().pending_count(), 0);
}

#[test]
fn the_injected_clock_decides_expiry() {
    let w = world();
    let svc = w.open();
    let inputs = digit();
    let sr = w.request(2, &inputs);
    w.clock.advance(60_001);
    let e = svc.serve(sr, inputs).unwrap_err();
    assert_eq!(e.code(), "expired", "{e}");
    assert_eq!(svc.pending_count(), 0, "no receipt for a refused request");
}

#[test]
fn a_torn_last_line_in_the_log_is_skipped_and_the_rest_kept() {
    let w = world();
    let svc = w.open();
    let inputs = digit();
    svc.serve(w.request(3, &inputs), inputs.clone()).unwrap();
    drop(svc);
    let log = w.dir.path().join("data/receipts.pending");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("deadbeef"); // a crash mid-append
    std::fs::write(&log, text).unwrap();
    let svc = w.open();
    assert_eq!(svc.pending_count(), 1);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().lines().count(),
        1,
        "the log is rewritten without the torn line"
    );
}
