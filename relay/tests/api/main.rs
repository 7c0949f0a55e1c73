//! Integration tests of the relay against real sockets. Each module covers one part of the
//! contract in relay/README.md ("Answers and what they mean", "Forwarding", "The spool").
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod admission;
mod auth;
mod backlog;
mod body;
mod config;
mod dead_letters;
mod dedupe;
mod failover;
mod forwarding;
mod full_disk;
mod health;
mod notify;
mod ordering;
mod process;
mod reload;
mod tls;
