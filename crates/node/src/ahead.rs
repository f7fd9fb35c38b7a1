//! Execution ahead of the decision. A proposer executes its block while it builds it
//! (`Ledger::build_block`); a validator that finds a proposal valid starts executing it on a
//! background thread while the votes go round. The commit of a decided block takes that result
//! instead of executing again, but only for the same block (its value id, BLAKE3 of every byte:
//! the header hash would not do, it does not cover the last commit) executed
//! on the state the commit starts from (the same latest version); anything else is executed at
//! commit as before, so a result kept here can only save time, never change what is committed.

use opal_ledger::BlockResult;
use opal_state::Overlay;
use opal_types::Hash;
use parking_lot::{Condvar, Mutex};
use std::sync::Arc;

/// A block's state transition, not yet committed.
pub struct Executed {
    /// The state after the block, over the snapshot it was executed on.
    pub state: Overlay,
    pub result: BlockResult,
}

/// At most this many blocks are kept or in flight (several rounds of one height, the next
/// height's first proposal); more proposals are executed at commit, if decided.
pub const MAX_AHEAD: usize = 4;

type Slot = Arc<(Mutex<Option<Option<Executed>>>, Condvar)>;

struct Entry {
    height: u64,
    /// The block's value id (`opal_consensus::value_id`).
    block: Hash,
    /// The latest committed version the block was executed on.
    base: Option<u64>,
    source: Source,
    /// `None` while running; then `Some(None)` if execution failed (the commit executes it
    /// again and reports the error) or `Some(Some(_))`.
    slot: Slot,
}

/// The blocks executed ahead of their decision.
#[derive(Default)]
pub struct Ahead {
    entries: Mutex<Vec<Entry>>,
}

/// Where the state transition of a committed block ran (the `block_executions` metric).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// While this node built it as the proposer.
    Build,
    /// On a background thread, after the proposal was found valid.
    Ahead,
    /// At commit.
    Commit,
}

impl Source {
    pub fn label(self) -> &'static str {
        match self {
            Source::Build => "build",
            Source::Ahead => "ahead",
            Source::Commit => "commit",
        }
    }
}

impl Ahead {
    /// Keep a block executed while it was built.
    pub fn put(&self, height: u64, block: Hash, base: Option<u64>, executed: Executed) {
        let slot: Slot = Arc::new((Mutex::new(Some(Some(executed))), Condvar::new()));
        self.insert(Entry {
            height,
            block,
            base,
            source: Source::Build,
            slot,
        });
    }

    /// Execute a block on a background thread, unless it is already kept or in flight or
    /// [`MAX_AHEAD`] are. `job` runs once; a panic in it counts as a failure.
    pub fn spawn(
        &self,
        height: u64,
        block: Hash,
        base: Option<u64>,
        job: impl FnOnce() -> Option<Executed> + Send + 'static,
    ) -> bool {
        let slot: Slot = Arc::new((Mutex::new(None), Condvar::new()));
        {
            let mut e = self.entries.lock();
            e.retain(|x| x.height >= height);
            if e.len() >= MAX_AHEAD || e.iter().any(|x| x.block == block && x.base == base) {
                return false;
            }
            e.push(Entry {
                height,
                block,
                base,
                source: Source::Ahead,
                slot: slot.clone(),
            });
        }
        let spawned = std::thread::Builder::new()
            .name("opal-execute-ahead".into())
            .spawn(move || {
                let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))
                    .ok()
                    .flatten();
                *slot.0.lock() = Some(done);
                slot.1.notify_all();
            });
        if spawned.is_err() {
            // No thread: forget it, the commit executes the block.
            self.entries
                .lock()
                .retain(|x| !(x.block == block && x.base == base));
            return false;
        }
        true
    }

    /// The execution of `block` at `height` on `base`, and where it ran, waiting for it if it
    /// is still running; `None` if there is none or it failed. Forgets everything at or below
    /// `height`.
    pub fn take(&self, height: u64, block: &Hash, base: Option<u64>) -> Option<(Executed, Source)> {
        let (slot, source) = {
            let mut e = self.entries.lock();
            let found = e
                .iter()
                .position(|x| x.height == height && x.block == *block && x.base == base)
                .map(|i| e.swap_remove(i))
                .map(|x| (x.slot, x.source));
            e.retain(|x| x.height > height);
            found?
        };
        let mut done = slot.0.lock();
        while done.is_none() {
            slot.1.wait(&mut done);
        }
        done.take().flatten().map(|x| (x, source))
    }

    /// How many blocks are kept or in flight.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&self, entry: Entry) {
        let mut e = self.entries.lock();
        e.retain(|x| x.height >= entry.height && !(x.block == entry.block && x.base == entry.base));
        if e.len() >= MAX_AHEAD {
            e.remove(0);
        }
        e.push(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn executed() -> Executed {
        let dir = tempfile::tempdir().unwrap();
        let store = opal_state::Store::open(&dir.path().join("s.redb")).unwrap();
        Executed {
            state: Overlay::new(store.snapshot().unwrap()),
            result: BlockResult::default(),
        }
    }

    #[test]
    fn only_the_same_block_on_the_same_base_is_taken() {
        let a = Ahead::default();
        let (b1, b2) = (Hash([1; 32]), Hash([2; 32]));
        a.put(5, b1, Some(4), executed());
        assert!(a.take(5, &b2, Some(4)).is_none(), "another block");
        a.put(5, b1, Some(4), executed());
        assert!(a.take(5, &b1, Some(3)).is_none(), "another base");
        a.put(5, b1, Some(4), executed());
        assert!(a.take(6, &b1, Some(4)).is_none(), "another height");
        assert!(a.is_empty(), "taking height 6 forgets height 5");
        a.put(5, b1, Some(4), executed());
        assert_eq!(a.take(5, &b1, Some(4)).map(|x| x.1), Some(Source::Build));
        assert!(a.take(5, &b1, Some(4)).is_none(), "taken once");
    }

    #[test]
    fn a_background_execution_is_waited_for_and_a_panic_is_a_miss() {
        let a = Ahead::default();
        let (b1, b2) = (Hash([1; 32]), Hash([2; 32]));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        assert!(a.spawn(7, b1, Some(6), move || {
            rx.recv().unwrap();
            Some(executed())
        }));
        assert!(!a.spawn(7, b1, Some(6), || None), "already in flight");
        assert!(a.spawn(7, b2, Some(6), || panic!("a bug in execution")));
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            tx.send(()).unwrap();
        });
        let (_, source) = a.take(7, &b1, Some(6)).expect("waits for the thread");
        assert_eq!(source, Source::Ahead);
        a.spawn(8, b2, Some(7), || panic!("a bug in execution"));
        assert!(a.take(8, &b2, Some(7)).is_none());
    }

    #[test]
    fn it_holds_at_most_max_ahead() {
        let a = Ahead::default();
        for i in 0..10u8 {
            a.put(3, Hash([i; 32]), Some(2), executed());
        }
        assert_eq!(a.len(), MAX_AHEAD);
        for i in 0..10u8 {
            a.spawn(3, Hash([100 + i; 32]), Some(2), || None);
        }
        assert_eq!(a.len(), MAX_AHEAD, "no more threads than that either");
        assert!(a.spawn(4, Hash([200; 32]), Some(3), || None));
        assert_eq!(
            a.len(),
            1,
            "a proposal for the next height: the last one is decided"
        );
    }
}
