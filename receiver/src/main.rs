//! `alertgate-receiver` command line.

use clap::Parser;

/// alertgate receiver.
#[derive(Debug, Parser)]
#[command(name = "alertgate-receiver", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
