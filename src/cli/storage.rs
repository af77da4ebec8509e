//! `cinegate storage migrate`: moves the packages still on the origin's disk to the bucket
//! (`[storage] mode = "s3"`), through the running server (no playback interruption) or,
//! when none runs, on the store directly.

use std::path::Path;
use std::sync::Arc;

use clap::Subcommand;

use crate::ops::{self, Request};

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Copy every local package to the bucket, confirm each object, then switch the film
    /// to it. Safe to run again: what the bucket already holds is skipped.
    Migrate,
}

pub fn run(config: Option<&Path>, command: StorageCommand) -> anyhow::Result<()> {
    let config = super::load_config(config)?;
    super::init_logging("warn");
    match command {
        StorageCommand::Migrate => {
            eprintln!(
                "moving local packages to the bucket {} …",
                config.storage.bucket
            );
            if let Some(response) =
                crate::control::send(&config.control_socket(), &Request::StorageMigrate)?
            {
                return super::user::finish(response);
            }
            let store = crate::store::Store::open(&config.store_dir())?;
            let storage = crate::storage::Storage::from_config(&config.storage)
                .map_err(anyhow::Error::msg)?;
            let queue = crate::jobs::JobQueue::new(
                store.clone(),
                Arc::new(config),
                Default::default(),
                Arc::new(crate::clock::SystemClock),
                Default::default(),
                Arc::new(storage),
            );
            // One runtime for the whole move: the bucket client's connections belong to it.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let moving = runtime.spawn_blocking(move || ops::storage_migrate(&queue));
            let response = runtime
                .block_on(moving)
                .map_err(|e| anyhow::anyhow!("the move crashed: {e}"))?;
            store.flush()?;
            super::user::finish(response)
        }
    }
}
