//! The embedded store: one sled database under the data root, one tree per record type.
//!
//! Records are JSON values (readable with any sled dump, tolerant to added fields); keys
//! are byte-encoded so prefix and range scans answer the queries: ids are UUIDv7 (16
//! bytes, time-ordered), composite keys concatenate fixed-width parts. Changes that must
//! agree across trees use sled transactions. sled writes go to its log in memory and are
//! flushed in the background (every 500 ms), so calls here do not wait on the disk; an
//! explicit `flush` runs at shutdown.

pub mod analytics;
pub mod comments;
pub mod devices;
pub mod events;
pub mod films;
pub(crate) mod gate;
pub mod grants;
pub mod identities;
pub mod jobs;
pub(crate) mod migrate;
pub mod orders;
pub mod outbox;
pub mod progress;
pub mod runners;
pub mod signin;
pub mod snapshot;
pub mod tokens;
pub mod uploads;
pub mod users;

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

pub(crate) use gate::{Gate, Transact, Tree};

/// The store's schema: `migrate::STEPS` take an older store here, one version at a time.
pub const SCHEMA_VERSION: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("store: record in `{tree}` is unreadable: {message}")]
    Corrupt { tree: &'static str, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("the store was written by a newer cinegate (schema {found}, this one reads up to {SCHEMA_VERSION}): upgrade cinegate to the version that wrote it, or newer")]
    NewerSchema { found: u32 },
    #[error("the store at {path} is in use by another process (is `cinegate serve` running?)")]
    Locked { path: String },
}

impl From<sled::transaction::TransactionError<StoreError>> for StoreError {
    fn from(e: sled::transaction::TransactionError<StoreError>) -> Self {
        match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Typed access to every tree. Cheap to clone (sled handles are reference counted).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    pub(crate) meta: Tree,
    pub(crate) users: Tree,
    pub(crate) users_by_email: Tree,
    pub(crate) refresh_tokens: Tree,
    pub(crate) login_links: Tree,
    pub(crate) films: Tree,
    pub(crate) jobs: Tree,
    /// `film ‖ job` → nothing: a film's jobs, oldest first (`jobs::write_job`).
    pub(crate) jobs_by_film: Tree,
    /// `state tag ‖ job` → nothing: the jobs in each state, oldest first; the queue reads
    /// its head here and `/metrics` counts here (`jobs::write_job`).
    pub(crate) jobs_by_state: Tree,
    pub(crate) grants: Tree,
    pub(crate) grants_by_user: Tree,
    pub(crate) progress: Tree,
    /// `film ‖ user` → nothing: who has progress on a film, so deleting a film does not
    /// walk everyone's progress (`progress::save_progress`).
    pub(crate) progress_by_film: Tree,
    pub(crate) uploads: Tree,
    pub(crate) identities: Tree,
    pub(crate) identities_by_user: Tree,
    pub(crate) signin_flows: Tree,
    pub(crate) exchange_codes: Tree,
    pub(crate) sessions: Tree,
    pub(crate) orders: Tree,
    pub(crate) orders_by_user: Tree,
    pub(crate) purchases: Tree,
    pub(crate) purchases_by_user: Tree,
    pub(crate) payment_events: Tree,
    /// `provider ‖ 0 ‖ payment id` → order id, for captured orders (`orders::payment_key`).
    pub(crate) orders_by_payment: Tree,
    /// `film ‖ order` → nothing, for tip orders: a film's tips without reading every order.
    pub(crate) tips_by_film: Tree,
    pub(crate) comments: Tree,
    pub(crate) comments_by_film: Tree,
    pub(crate) comment_reports: Tree,
    /// `comment` → nothing: the comments moderation looks at (reported, held, hidden),
    /// written in the comment's transaction (`comments::flag`).
    pub(crate) comments_flagged: Tree,
    pub(crate) supports: Tree,
    /// The domain event log (`events::Event`), keyed by sled's monotonic id.
    pub(crate) event_log: Tree,
    /// Held while an event id is given out and its record written (`with_event_id`).
    event_order: std::sync::Arc<std::sync::Mutex<()>>,
    /// The write gate every tree above passes (`gate`); `snapshot` closes it.
    pub(crate) gate: Gate,
    /// Added to sled's generated ids for event ids: zero, or for a restored store the id
    /// its snapshot would have given next (`snapshot`), so event ids keep growing.
    pub(crate) event_id_floor: u64,
    pub(crate) social_counts: Tree,
    /// user ‖ device → `Device` (push registrations, `devices`).
    pub(crate) devices: Tree,
    /// platform ‖ 0 ‖ token → user ‖ device: one owner per token.
    pub(crate) devices_by_token: Tree,
    /// Analytics rollups and their indexes (`analytics`).
    pub(crate) analytics_rollups: Tree,
    pub(crate) analytics_seen: Tree,
    pub(crate) analytics_viewers: Tree,
    pub(crate) analytics_retention: Tree,
    pub(crate) analytics_film_days: Tree,
    pub(crate) analytics_film_months: Tree,
    /// Notification deliveries waiting, keyed `due ms ‖ id` (`outbox::OutboxEntry`).
    pub(crate) outbox: Tree,
    /// Deliveries that gave up, by id, until an admin retries them.
    pub(crate) outbox_dead: Tree,
    /// `user` → `outbox::NotificationPrefs`.
    pub(crate) notification_prefs: Tree,
    /// Remote packaging runners by id (`runners::Runner`).
    pub(crate) runners: Tree,
    /// SHA-256 of a runner token → runner id.
    pub(crate) runner_tokens: Tree,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Self> {
        let db = sled::Config::new().path(dir).open().map_err(|e| match e {
            // sled wraps the flock failure in an io::Error of its own; its text is the
            // only stable marker.
            sled::Error::Io(ref io) if io.to_string().contains("could not acquire lock") => {
                StoreError::Locked {
                    path: dir.display().to_string(),
                }
            }
            other => StoreError::Sled(other),
        })?;
        Self::from_db(db)
    }

    /// A throwaway in-memory store for unit tests.
    #[cfg(test)]
    pub fn temporary() -> Result<Self> {
        let db = sled::Config::new().temporary(true).open()?;
        Self::from_db(db)
    }

    fn from_db(db: sled::Db) -> Result<Self> {
        let gate = Gate::default();
        let open =
            |name: &str| -> Result<Tree> { Ok(Tree::new(db.open_tree(name)?, gate.clone())) };
        let store = Self {
            gate: gate.clone(),
            meta: open("meta")?,
            users: open("users")?,
            users_by_email: open("users_by_email")?,
            refresh_tokens: open("refresh_tokens")?,
            login_links: open("login_links")?,
            films: open("films")?,
            jobs: open("jobs")?,
            jobs_by_film: open("jobs_by_film")?,
            jobs_by_state: open("jobs_by_state")?,
            grants: open("grants")?,
            grants_by_user: open("grants_by_user")?,
            progress: open("progress")?,
            progress_by_film: open("progress_by_film")?,
            uploads: open("uploads")?,
            identities: open("identities")?,
            identities_by_user: open("identities_by_user")?,
            signin_flows: open("signin_flows")?,
            exchange_codes: open("exchange_codes")?,
            sessions: open("sessions")?,
            orders: open("orders")?,
            orders_by_user: open("orders_by_user")?,
            purchases: open("purchases")?,
            purchases_by_user: open("purchases_by_user")?,
            payment_events: open("payment_events")?,
            orders_by_payment: open("orders_by_payment")?,
            tips_by_film: open("tips_by_film")?,
            comments: open("comments")?,
            comments_by_film: open("comments_by_film")?,
            comment_reports: open("comment_reports")?,
            comments_flagged: open("comments_flagged")?,
            supports: open("supports")?,
            event_log: open("event_log")?,
            event_order: Default::default(),
            event_id_floor: 0,
            social_counts: open("social_counts")?,
            devices: open("devices")?,
            devices_by_token: open("devices_by_token")?,
            analytics_rollups: open("analytics_rollups")?,
            analytics_seen: open("analytics_seen")?,
            analytics_viewers: open("analytics_viewers")?,
            analytics_retention: open("analytics_retention")?,
            analytics_film_days: open("analytics_film_days")?,
            analytics_film_months: open("analytics_film_months")?,
            outbox: open("outbox")?,
            outbox_dead: open("outbox_dead")?,
            notification_prefs: open("notification_prefs")?,
            runners: open("runners")?,
            runner_tokens: open("runner_tokens")?,
            db,
        };
        let mut store = store;
        if let Some(v) = store.meta.get(snapshot::EVENT_ID_FLOOR)? {
            store.event_id_floor =
                v.as_ref()
                    .try_into()
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt {
                        tree: "meta",
                        message: snapshot::EVENT_ID_FLOOR.into(),
                    })?;
        }
        store.migrate()?;
        Ok(store)
    }

    /// Whether the database answers: one read of one small record (the schema version),
    /// however many records the store holds. For `/healthz`, which a load balancer may ask
    /// every second; the answer must neither grow with the catalogue nor fail because one
    /// film record does not decode.
    pub fn health(&self) -> Result<()> {
        match self.meta.get("schema_version")? {
            Some(_) => Ok(()),
            None => Err(StoreError::Corrupt {
                tree: "meta",
                message: "schema_version is missing".into(),
            }),
        }
    }

    /// Bytes the database takes on disk, as sled counts them.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }

    /// Each tree's name and number of records, by name (sled's default tree left out).
    /// Walks every tree's keys without reading a value: for the console's system page.
    pub fn tree_counts(&self) -> Result<Vec<(String, usize)>> {
        let mut out = Vec::new();
        for name in self.db.tree_names() {
            let name = String::from_utf8_lossy(&name).into_owned();
            if name.starts_with("__sled__") {
                continue;
            }
            let mut n = 0;
            for key in self.db.open_tree(&name)?.iter().keys() {
                key?;
                n += 1;
            }
            out.push((name, n));
        }
        out.sort();
        Ok(out)
    }

    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    /// Waits until everything written so far is on disk. For records that must survive a
    /// crash the moment they are acknowledged (money: orders, captures, refunds).
    pub async fn flush_async(&self) -> Result<()> {
        self.db.flush_async().await?;
        Ok(())
    }
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Plain data structs with string keys always serialise.
    serde_json::to_vec(value).unwrap_or_default()
}

pub(crate) fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        tree,
        message: e.to_string(),
    })
}

pub(crate) fn get<T: DeserializeOwned>(
    tree: &Tree,
    name: &'static str,
    key: &[u8],
) -> Result<Option<T>> {
    tree.get(key)?.map(|v| decode(name, &v)).transpose()
}

pub(crate) fn put<T: Serialize>(tree: &Tree, key: &[u8], value: &T) -> Result<()> {
    tree.insert(key, encode(value))?;
    Ok(())
}

/// Applies `change` to the record at `key` atomically: read, decode, change, then a
/// compare-and-swap, retried when another writer got there first (`change` may run more
/// than once). `change` returns whether it changed anything; nothing is written when it
/// did not. `Ok(None)` when there is no record.
///
/// Every read-modify-write of a JSON record goes through here rather than sled's
/// `fetch_and_update`, whose closure deletes the key when it returns `None`: a record
/// that no longer decodes (a schema change, a bad disk) must surface as `Corrupt` and stay
/// on disk for the operator, not vanish as "not found".
pub(crate) fn update<T: Serialize + DeserializeOwned>(
    tree: &Tree,
    name: &'static str,
    key: &[u8],
    mut change: impl FnMut(&mut T) -> bool,
) -> Result<Option<T>> {
    loop {
        let Some(current) = tree.get(key)? else {
            return Ok(None);
        };
        let mut value: T = decode(name, &current).map_err(|e| keyed(e, key))?;
        if !change(&mut value) {
            return Ok(Some(value));
        }
        // Unlike `encode`, an encoding failure here is an error, never an empty record.
        let bytes = serde_json::to_vec(&value).map_err(|e| StoreError::Corrupt {
            tree: name,
            message: format!("key {}: cannot encode: {e}", hex::encode(key)),
        })?;
        if tree
            .compare_and_swap(key, Some(current), Some(bytes))?
            .is_ok()
        {
            return Ok(Some(value));
        }
    }
}

/// Names the record's key in a `Corrupt` error, so the operator can find it.
pub(crate) fn keyed(e: StoreError, key: &[u8]) -> StoreError {
    match e {
        StoreError::Corrupt { tree, message } => StoreError::Corrupt {
            tree,
            message: format!("key {}: {message}", hex::encode(key)),
        },
        other => other,
    }
}

pub(crate) fn scan<T: DeserializeOwned>(
    tree: &Tree,
    name: &'static str,
    prefix: &[u8],
) -> Result<Vec<T>> {
    tree.scan_prefix(prefix)
        .map(|kv| {
            let (_, v) = kv?;
            decode(name, &v)
        })
        .collect()
}

/// A new time-ordered id.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// The smallest time-ordered id (UUIDv7) of Unix second `at`: the start of a key range of
/// records created from then on.
pub(crate) fn first_id_at(at: i64) -> Uuid {
    let millis = (at.max(0) as u64).saturating_mul(1000);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    Uuid::from_bytes(bytes)
}

/// Parses an id from a URL or JSON; `None` for anything that is not one of ours.
pub fn parse_id(text: &str) -> Option<Uuid> {
    Uuid::try_parse(text).ok()
}

pub(crate) fn pair(a: &Uuid, b: &Uuid) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(a.as_bytes());
    key[16..].copy_from_slice(b.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::films::Film;
    use super::jobs::{Job, JobState};
    use super::*;

    /// What a later schema (or a bad disk) may leave behind: JSON, but neither a film nor
    /// a job.
    const UNREADABLE: &[u8] = br#"{"id":"not-a-uuid","title":7,"state":"frozen"}"#;

    fn film(id: Uuid) -> Film {
        Film {
            id,
            title: "A film".into(),
            description: String::new(),
            prices: Vec::new(),
            published: false,
            publish_when_ready: false,
            source: None,
            package: None,
            created_at: 1,
            updated_at: 1,
        }
    }

    #[test]
    fn an_unreadable_film_is_reported_and_left_in_place() -> Result<()> {
        let store = Store::temporary()?;
        let id = new_id();
        store.films.insert(id.as_bytes(), UNREADABLE)?;
        let mut called = false;
        let outcome = store.update_film(&id, |f| {
            called = true;
            f.title = "overwritten".into();
        });
        assert!(
            matches!(outcome, Err(StoreError::Corrupt { tree: "films", .. })),
            "an update of an unreadable film answered {outcome:?}"
        );
        assert!(!called, "the change ran on a record that did not decode");
        assert_eq!(
            store.films.get(id.as_bytes())?.as_deref(),
            Some(UNREADABLE),
            "the unreadable film record was changed or deleted"
        );
        Ok(())
    }

    #[test]
    fn an_unreadable_job_is_reported_and_left_in_place() -> Result<()> {
        let store = Store::temporary()?;
        let id = new_id();
        store.jobs.insert(id.as_bytes(), UNREADABLE)?;
        let outcome = store.update_job(&id, |j| j.state = JobState::Queued);
        assert!(
            matches!(outcome, Err(StoreError::Corrupt { tree: "jobs", .. })),
            "an update of an unreadable job answered {outcome:?}"
        );
        assert_eq!(
            store.jobs.get(id.as_bytes())?.as_deref(),
            Some(UNREADABLE),
            "the unreadable job record was changed or deleted"
        );
        Ok(())
    }

    #[test]
    fn update_changes_a_readable_record_and_skips_a_missing_one() -> Result<()> {
        let store = Store::temporary()?;
        let id = new_id();
        assert_eq!(store.update_film(&id, |f| f.title = "x".into())?, None);
        assert!(
            store.films.get(id.as_bytes())?.is_none(),
            "created by update"
        );

        store.save_film(&film(id))?;
        let updated = store.update_film(&id, |f| f.title = "Renamed".into())?;
        assert_eq!(updated.map(|f| f.title), Some("Renamed".to_string()));
        assert_eq!(store.film(&id)?.map(|f| f.title), Some("Renamed".into()));

        // A change that changes nothing writes nothing (the stored bytes stay as they were).
        let spaced = br#"{ "id": "00000000-0000-7000-8000-000000000001", "film_id": "00000000-0000-7000-8000-000000000002", "source": "s", "state": "queued", "progress": 0.0, "attempts": 0, "created_at": 1, "updated_at": 1 }"#;
        store.jobs.insert(id.as_bytes(), spaced.as_slice())?;
        let job: Option<Job> = update(&store.jobs, "jobs", id.as_bytes(), |_: &mut Job| false)?;
        assert_eq!(job.map(|j| j.state), Some(JobState::Queued));
        assert_eq!(
            store.jobs.get(id.as_bytes())?.as_deref(),
            Some(spaced.as_slice())
        );
        Ok(())
    }

    /// `/healthz`'s check reads no film: it answers the same over a thousand films none of
    /// which decodes, where reading the catalogue fails at the first.
    #[test]
    fn health_reads_no_record_however_many_there_are() -> Result<()> {
        let store = Store::temporary()?;
        store.health()?;
        for _ in 0..1000 {
            store.films.insert(new_id().as_bytes(), UNREADABLE)?;
        }
        assert!(
            store.films().is_err(),
            "the catalogue read the unreadable films"
        );
        store.health()?;
        store.meta.remove("schema_version")?;
        assert!(
            matches!(
                store.health(),
                Err(StoreError::Corrupt { tree: "meta", .. })
            ),
            "a store with no schema version answered healthy"
        );
        Ok(())
    }
}
