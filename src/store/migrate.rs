//! Numbered schema migrations, run in order by `Store::open`.
//!
//! `meta/schema_version` says which steps a store has had. Step `n` takes a store from
//! version `n` to `n + 1`; after each, its writes are flushed and then the new version is
//! written and flushed, so a crash re-runs at most the step it interrupted — and every
//! step is safe to re-run (it rebuilds what it makes: clear and rebuild, or idempotent
//! inserts). A new store gets the newest version at once: it has nothing to migrate.
//!
//! Schema 1 is what every release before these migrations wrote. Those releases upgraded
//! in place with one-off steps, each guarded by its own `meta` flag, so a schema-1 store
//! may have had some of them and not others; the steps below still honour those flags
//! (a step a schema-1 store already had is skipped) and remove them once the version
//! moves past the step, after which nothing reads them.

use super::{Result, Store, StoreError, SCHEMA_VERSION};

type Step = fn(&Store) -> Result<()>;

/// `(from version, what it does, the step)`, in order; the last `from` is
/// `SCHEMA_VERSION - 1`.
pub(crate) const STEPS: &[(u32, &str, Step)] = &[
    (1, "drop the unused wave-1 `events` tree", drop_events),
    (2, "count comments and supporters per film", |s| {
        s.build_social_counts_once()
    }),
    (3, "index captured orders by payment id", |s| {
        s.index_payments_once()
    }),
    (4, "index jobs by film and by state", |s| {
        s.index_jobs_once()
    }),
    (5, "index tips by film", |s| s.index_tips_once()),
    (6, "index progress by film", |s| s.index_progress_once()),
    (7, "index the flagged comments", |s| {
        s.index_flagged_comments_once()
    }),
];

/// The `meta` flags (and the `orders_by_payment` marker) of the one-off steps: read only
/// by the steps above, and removed after them.
const OLD_FLAGS: &[&str] = &[
    "social_counts_built",
    "jobs_indexed",
    "tips_indexed",
    "progress_indexed",
    "comments_flagged_indexed",
];

const KEY: &str = "schema_version";

fn drop_events(store: &Store) -> Result<()> {
    // The social events of wave 1 (comments, reports, supports, tips), never read: the
    // event log and the analytics backfill replace them.
    store.db.drop_tree("events")?;
    Ok(())
}

impl Store {
    /// Brings the store to `SCHEMA_VERSION`, or refuses one from a newer cinegate.
    pub(crate) fn migrate(&self) -> Result<()> {
        let mut version =
            match self.meta.get(KEY)? {
                None => {
                    self.set_version(SCHEMA_VERSION)?;
                    return Ok(());
                }
                Some(v) => v.as_ref().try_into().map(u32::from_be_bytes).map_err(|_| {
                    StoreError::Corrupt {
                        tree: "meta",
                        message: KEY.into(),
                    }
                })?,
            };
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema { found: version });
        }
        while version < SCHEMA_VERSION {
            let Some((_, what, step)) = STEPS.iter().find(|(from, _, _)| *from == version) else {
                return Err(StoreError::Corrupt {
                    tree: "meta",
                    message: format!("no migration from schema {version}"),
                });
            };
            tracing::info!(
                from = version,
                to = version + 1,
                step = what,
                "migrating the store"
            );
            step(self)?;
            self.db.flush()?;
            version += 1;
            self.set_version(version)?;
        }
        // Past every one-off step: their flags say nothing any more.
        for flag in OLD_FLAGS {
            self.meta.remove(flag)?;
        }
        self.orders_by_payment.remove(super::orders::INDEXED)?;
        Ok(())
    }

    fn set_version(&self, version: u32) -> Result<()> {
        self.meta.insert(KEY, &version.to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The fixture `tests/fixtures/store-schema-1.json` is a schema-1 store as the last
    //! release before the migrations wrote it: two jobs, a captured purchase order (with
    //! its purchase) and a captured tip, progress, a reported comment, another comment
    //! and a support — and
    //! none of the indexes, counters or flags the one-off steps added (the trees
    //! `social_counts`, `orders_by_payment`, `jobs_by_film`, `jobs_by_state`,
    //! `tips_by_film`, `progress_by_film`, `comments_flagged` are absent), plus the old
    //! `events` tree. It was produced by `write_the_schema_1_fixture` below (run with
    //! `--ignored`): the records are made through the store's API, then only the record
    //! trees are dumped, with `schema_version` 1. Keys are hex; values are JSON records
    //! (or hex for the few binary ones).

    use std::collections::BTreeMap;

    use anyhow::Context;

    use super::*;
    use serde_json::{json, Value};

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/store-schema-1.json"
    );

    /// The trees a schema-1 store had (the others are the one-off steps' work).
    const RECORD_TREES: &[&str] = &[
        "users",
        "users_by_email",
        "films",
        "jobs",
        "grants",
        "grants_by_user",
        "progress",
        "orders",
        "orders_by_user",
        "purchases",
        "purchases_by_user",
        "comments",
        "comments_by_film",
        "comment_reports",
        "supports",
    ];

    #[test]
    fn a_schema_1_store_migrates_to_the_newest_and_reruns_safely() -> anyhow::Result<()> {
        let fixture: Value = serde_json::from_str(&std::fs::read_to_string(FIXTURE)?)?;
        let dir = tempfile::tempdir()?;
        {
            // Written as the old release wrote it: raw trees, no `Store::open`.
            let db = sled::open(dir.path())?;
            for (tree, records) in fixture
                .as_object()
                .context("the fixture is not an object of trees")?
            {
                let t = db.open_tree(tree)?;
                for (k, v) in records
                    .as_object()
                    .context("a tree is not an object of records")?
                {
                    let value = match v {
                        Value::Object(o) if o.contains_key("hex") => {
                            hex::decode(o["hex"].as_str().unwrap_or_default())?
                        }
                        other => serde_json::to_vec(other)?,
                    };
                    t.insert(hex::decode(k)?, value)?;
                }
            }
            db.flush()?;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let store = loop {
            match Store::open(dir.path()) {
                Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                other => break other?,
            }
        };
        assert_eq!(store.schema_version()?, SCHEMA_VERSION);
        // Every one-off step's work is there.
        assert!(!store.social_counts.is_empty(), "no social counts");
        assert!(!store.jobs_by_film.is_empty() && !store.jobs_by_state.is_empty());
        assert!(!store.tips_by_film.is_empty(), "tips not indexed");
        assert!(!store.progress_by_film.is_empty(), "progress not indexed");
        assert!(
            !store.comments_flagged.is_empty(),
            "flagged comments not indexed"
        );
        assert!(
            store.orders_by_payment.len() >= 2,
            "captures not indexed by payment id"
        );
        assert!(!store.db.tree_names().iter().any(|n| n == b"events"));
        for flag in OLD_FLAGS {
            assert!(store.meta.get(flag)?.is_none(), "{flag} left behind");
        }
        let counts: BTreeMap<_, _> = store
            .social_counts
            .iter()
            .filter_map(|kv| kv.ok())
            .collect();
        // Re-running a step (a crash after its writes, before the version) changes nothing.
        let tips = store.tips_by_film.len();
        store.meta.insert(KEY, &5u32.to_be_bytes())?;
        store.migrate()?;
        assert_eq!(store.tips_by_film.len(), tips);
        let again: BTreeMap<_, _> = store
            .social_counts
            .iter()
            .filter_map(|kv| kv.ok())
            .collect();
        assert_eq!(counts, again);
        assert_eq!(store.schema_version()?, SCHEMA_VERSION);
        Ok(())
    }

    #[test]
    fn a_store_from_a_newer_cinegate_is_refused_with_what_to_do() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        Store::open(dir.path())?
            .meta
            .insert(KEY, &(SCHEMA_VERSION + 1).to_be_bytes())?;
        // sled lets go of the lock from its flusher thread, a moment after the drop.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let err = loop {
            match Store::open(dir.path()) {
                Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                other => break other.err().context("a store of a newer schema opened")?,
            }
        };
        assert!(matches!(err, StoreError::NewerSchema { found } if found == SCHEMA_VERSION + 1));
        assert!(err.to_string().contains("upgrade cinegate"), "{err}");
        Ok(())
    }

    #[test]
    fn every_version_has_one_step() {
        let froms: Vec<u32> = STEPS.iter().map(|s| s.0).collect();
        assert_eq!(froms, (1..SCHEMA_VERSION).collect::<Vec<_>>());
    }

    /// Writes the fixture (see the module's comment). `cargo test --lib
    /// write_the_schema_1_fixture -- --ignored`.
    #[test]
    #[ignore]
    fn write_the_schema_1_fixture() -> anyhow::Result<()> {
        let store = Store::temporary()?;
        fixture_records(&store)?;
        let mut out = serde_json::Map::new();
        for tree in RECORD_TREES.iter().chain(["meta", "events"].iter()) {
            let mut records = serde_json::Map::new();
            if *tree == "meta" {
                records.insert(
                    hex::encode(KEY),
                    json!({ "hex": hex::encode(1u32.to_be_bytes()) }),
                );
            } else if *tree == "events" {
                records.insert(hex::encode(b"old"), json!({ "kind": "comment" }));
            } else {
                for kv in store.db.open_tree(tree)?.iter() {
                    let (k, v) = kv?;
                    let value = serde_json::from_slice::<Value>(&v)
                        .unwrap_or_else(|_| json!({ "hex": hex::encode(&v) }));
                    records.insert(hex::encode(&k), value);
                }
            }
            out.insert(tree.to_string(), Value::Object(records));
        }
        std::fs::write(FIXTURE, serde_json::to_string_pretty(&out)? + "\n")?;
        Ok(())
    }

    fn fixture_records(store: &Store) -> anyhow::Result<()> {
        use crate::store::comments::{tests::comment, Support};
        use crate::store::jobs::{tests::job, JobState};
        use crate::store::orders::{tests::order, OrderKind};
        use crate::store::progress::ProgressRecord;
        let (film, other) = (super::super::new_id(), super::super::new_id());
        let (buyer, viewer) = (super::super::new_id(), super::super::new_id());
        store.save_job(&job(film, JobState::Ready))?;
        store.save_job(&job(other, JobState::Queued))?;
        let bought = order(buyer, film);
        store.create_order(&bought)?;
        store.capture_order(&bought.id, "CAP-1", "fixture", 2)?;
        let tip = crate::store::orders::Order {
            kind: OrderKind::Tip,
            ..order(viewer, film)
        };
        store.create_order(&tip)?;
        store.capture_order(&tip.id, "CAP-2", "fixture", 3)?;
        store.save_progress(&buyer, &film, &ProgressRecord::new(10))?;
        let quiet = comment(film, buyer, "a quiet comment");
        let reported = comment(film, viewer, "a reported comment");
        store.add_comment(&quiet)?;
        store.add_comment(&reported)?;
        store.report_comment(&reported.id, &buyer, 4)?;
        store.add_support(
            &film,
            &viewer,
            &Support {
                at: 5,
                message: None,
            },
        )?;
        Ok(())
    }
}
