//! The store-wide write gate: what makes a backup a point-in-time snapshot.
//!
//! sled 0.34 has no snapshot read: `Db::export` walks the trees one after the other while
//! writers go on, so an order captured and its purchase granted in one transaction could
//! land on either side of the walk (the order's tree read before the transaction, the
//! purchases tree after it). sled's own global concurrency lock (which its transactions
//! and `Db::checksum` take) is private to the crate, and iterating inside a transaction
//! would take it again and deadlock.
//!
//! So every tree of a `Store` is this `Tree`, which exposes sled's read methods as they
//! are and takes the gate *shared* around every write (insert, remove, compare-and-swap,
//! batch, clear, and every transaction over any number of trees). `Store::snapshot` takes
//! it *exclusively* while it reads every tree: no write is half in, and writes made while
//! it reads wait (reads never do). There is no `Deref` to `sled::Tree`, so a write that
//! went around the gate would not compile.
//!
//! A thread that already holds the gate (a write made from inside another write's
//! closure) does not take it again: a second shared lock behind a waiting snapshot would
//! deadlock on std's writer-preferring `RwLock`.

use std::cell::Cell;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use sled::transaction::{ConflictableTransactionResult, TransactionResult, Transactional};
use sled::{IVec, Iter};

/// Shared by every tree of one store.
#[derive(Clone, Default)]
pub(crate) struct Gate(Arc<RwLock<()>>);

thread_local! {
    /// How many gated writes this thread is inside.
    static HELD: Cell<u32> = const { Cell::new(0) };
}

pub(crate) struct Shared<'a> {
    _guard: Option<RwLockReadGuard<'a, ()>>,
}

impl Drop for Shared<'_> {
    fn drop(&mut self) {
        HELD.with(|h| h.set(h.get().saturating_sub(1)));
    }
}

impl Gate {
    /// Held by a write for its duration.
    pub(crate) fn shared(&self) -> Shared<'_> {
        let outer = HELD.with(|h| {
            let n = h.get();
            h.set(n + 1);
            n == 0
        });
        Shared {
            _guard: outer.then(|| self.0.read().unwrap_or_else(|p| p.into_inner())),
        }
    }

    /// Held by a snapshot while it reads every tree: no write runs meanwhile.
    pub(crate) fn exclusive(&self) -> RwLockWriteGuard<'_, ()> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// A sled tree whose writes pass the store's gate.
#[derive(Clone)]
pub(crate) struct Tree {
    inner: sled::Tree,
    gate: Gate,
}

impl Tree {
    pub(crate) fn new(inner: sled::Tree, gate: Gate) -> Self {
        Self { inner, gate }
    }

    // Reads: as sled has them.

    pub fn get<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<Option<IVec>> {
        self.inner.get(key)
    }

    pub fn contains_key<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<bool> {
        self.inner.contains_key(key)
    }

    pub fn iter(&self) -> Iter {
        self.inner.iter()
    }

    pub fn scan_prefix<P: AsRef<[u8]>>(&self, prefix: P) -> Iter {
        self.inner.scan_prefix(prefix)
    }

    pub fn range<K: AsRef<[u8]>, R: std::ops::RangeBounds<K>>(&self, range: R) -> Iter {
        self.inner.range(range)
    }

    pub fn last(&self) -> sled::Result<Option<(IVec, IVec)>> {
        self.inner.last()
    }

    // Counting walks the whole tree: for tests and the `/metrics` scrape's outbox depth
    // (run in the blocking pool, off the request path), never a request.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    pub fn watch_prefix<P: AsRef<[u8]>>(&self, prefix: P) -> sled::Subscriber {
        self.inner.watch_prefix(prefix)
    }

    // Writes: through the gate.

    pub fn insert<K: AsRef<[u8]>, V: Into<IVec>>(
        &self,
        key: K,
        value: V,
    ) -> sled::Result<Option<IVec>> {
        let _g = self.gate.shared();
        self.inner.insert(key, value)
    }

    pub fn remove<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<Option<IVec>> {
        let _g = self.gate.shared();
        self.inner.remove(key)
    }

    pub fn compare_and_swap<K: AsRef<[u8]>, OV: AsRef<[u8]>, NV: Into<IVec>>(
        &self,
        key: K,
        old: Option<OV>,
        new: Option<NV>,
    ) -> sled::Result<std::result::Result<(), sled::CompareAndSwapError>> {
        let _g = self.gate.shared();
        self.inner.compare_and_swap(key, old, new)
    }

    pub fn fetch_and_update<K, V, F>(&self, key: K, f: F) -> sled::Result<Option<IVec>>
    where
        K: AsRef<[u8]>,
        F: FnMut(Option<&[u8]>) -> Option<V>,
        V: Into<IVec>,
    {
        let _g = self.gate.shared();
        self.inner.fetch_and_update(key, f)
    }

    pub fn clear(&self) -> sled::Result<()> {
        let _g = self.gate.shared();
        self.inner.clear()
    }

    pub fn transaction<F, A, E>(&self, f: F) -> TransactionResult<A, E>
    where
        F: Fn(&sled::transaction::TransactionalTree) -> ConflictableTransactionResult<A, E>,
    {
        let _g = self.gate.shared();
        self.inner.transaction(f)
    }
}

/// A transaction over several trees, through the gate: `(&a, &b).transaction(|(a, b)| …)`
/// as with sled's own trees.
pub(crate) trait Transact<E> {
    type View;
    fn transaction<F, A>(&self, f: F) -> TransactionResult<A, E>
    where
        F: Fn(&Self::View) -> ConflictableTransactionResult<A, E>;
}

// A type per tuple position (the position itself unused), as sled's own `repeat_type!`.
macro_rules! gated_ref {
    ($i:tt) => {
        &Tree
    };
}
macro_rules! view_of {
    ($i:tt) => {
        sled::transaction::TransactionalTree
    };
}

macro_rules! transact_tuple {
    ($($i:tt : $t:ident),+) => {
        impl<E> Transact<E> for ($(gated_ref!($i),)+) {
            type View = ($(view_of!($i),)+);
            fn transaction<F, A>(&self, f: F) -> TransactionResult<A, E>
            where
                F: Fn(&Self::View) -> ConflictableTransactionResult<A, E>,
            {
                let _g = self.0.gate.shared();
                ($(&self.$i.inner,)+).transaction(f)
            }
        }
    };
}

transact_tuple!(0: A);
transact_tuple!(0: A, 1: B);
transact_tuple!(0: A, 1: B, 2: C);
transact_tuple!(0: A, 1: B, 2: C, 3: D);
transact_tuple!(0: A, 1: B, 2: C, 3: D, 4: F);
transact_tuple!(0: A, 1: B, 2: C, 3: D, 4: F, 5: G);
transact_tuple!(0: A, 1: B, 2: C, 3: D, 4: F, 5: G, 6: H);
transact_tuple!(0: A, 1: B, 2: C, 3: D, 4: F, 5: G, 6: H, 7: I);
