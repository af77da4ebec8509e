//! `cinegate user create EMAIL [--admin]`, `cinegate user login-link EMAIL`.

use std::path::Path;

use clap::Subcommand;

use crate::clock::Clock;
use crate::ops::{self, Request, Response};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (a viewer unless --admin).
    Create {
        email: String,
        #[arg(long)]
        admin: bool,
    },
    /// Print a one-time sign-in link for a user.
    LoginLink { email: String },
}

pub fn run(config: Option<&Path>, cmd: UserCommand) -> anyhow::Result<()> {
    let config = super::load_config(config)?;
    super::init_logging("warn");
    let request = match &cmd {
        UserCommand::Create { email, admin } => Request::UserCreate {
            email: email.clone(),
            admin: *admin,
        },
        UserCommand::LoginLink { email } => Request::LoginLink {
            email: email.clone(),
        },
    };
    let response = match crate::control::send(&config.control_socket(), &request)? {
        Some(r) => r,
        None => {
            crate::startup::prepare_data_root(&config)?;
            let store = crate::store::Store::open(&config.store_dir())?;
            let now = crate::clock::SystemClock.now();
            let r = match request {
                Request::UserCreate { email, admin } => {
                    Response::of(ops::user_create(&store, &email, admin, now))
                }
                Request::LoginLink { email } => {
                    Response::of(ops::login_link(&config, &store, &email, now))
                }
                Request::Ingest { .. } | Request::StoreSnapshot | Request::StorageMigrate => {
                    Response::err("unreachable".into())
                }
            };
            store.flush()?;
            r
        }
    };
    finish(response)
}

pub fn finish(response: Response) -> anyhow::Result<()> {
    if response.ok {
        println!("{}", response.message);
        Ok(())
    } else {
        anyhow::bail!("{}", response.message)
    }
}
