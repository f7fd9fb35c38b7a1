//! The zk proof queue: jobs in the order they were served, and where each proof stands
//! (`GET /api/proofs/{request_id}`). The worker's prover thread takes jobs from it one at a time.

use opal_types::Hash;
use parking_lot::{Condvar, Mutex};
use std::collections::{HashMap, VecDeque};

/// Most proof states remembered (finished ones are forgotten first).
const MAX_PROOF_STATES: usize = 100_000;

/// Where a request's proof stands (the API's type: what `GET /api/proofs/{id}` reports).
pub use opal_api::ProofState;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Hash>,
    state: HashMap<Hash, ProofState>,
}

#[derive(Default)]
pub struct ProofQueue {
    q: Mutex<Queue>,
    ready: Condvar,
}

impl ProofQueue {
    /// Queue a proof of `id`, unless one is queued, under way or done.
    pub fn enqueue(&self, id: Hash) {
        let mut q = self.q.lock();
        if matches!(
            q.state.get(&id),
            Some(ProofState::Queued | ProofState::Proving { .. } | ProofState::Done { .. })
        ) {
            return;
        }
        if q.state.len() >= MAX_PROOF_STATES {
            q.state
                .retain(|_, st| matches!(st, ProofState::Queued | ProofState::Proving { .. }));
        }
        q.state.insert(id, ProofState::Queued);
        q.jobs.push_back(id);
        self.ready.notify_one();
    }

    /// The next job, waiting for one.
    pub fn next(&self) -> Hash {
        let mut q = self.q.lock();
        loop {
            if let Some(id) = q.jobs.pop_front() {
                return id;
            }
            self.ready.wait(&mut q);
        }
    }

    pub fn state(&self, id: &Hash) -> Option<ProofState> {
        self.q.lock().state.get(id).cloned()
    }

    pub fn set(&self, id: Hash, st: ProofState) {
        self.q.lock().state.insert(id, st);
    }

    pub fn forget(&self, id: &Hash) {
        self.q.lock().state.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_queued_once_and_jobs_come_out_in_order() {
        let q = ProofQueue::default();
        let (a, b) = (Hash([1; 32]), Hash([2; 32]));
        q.enqueue(a);
        q.enqueue(b);
        q.enqueue(a);
        assert_eq!(q.next(), a);
        assert_eq!(q.next(), b);
        q.set(a, ProofState::Failed { error: "x".into() });
        // A failed proof may be tried again; a done one is not.
        q.enqueue(a);
        assert_eq!(q.state(&a), Some(ProofState::Queued));
        assert_eq!(q.next(), a);
        q.set(
            b,
            ProofState::Done {
                proof_bytes: 1,
                prove_ms: 1.0,
            },
        );
        q.enqueue(b);
        assert!(matches!(q.state(&b), Some(ProofState::Done { .. })));
    }
}
