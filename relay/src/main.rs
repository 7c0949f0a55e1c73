//! `alertgate-relay` command line.

use clap::Parser;

/// alertgate relay.
#[derive(Debug, Parser)]
#[command(name = "alertgate-relay", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
