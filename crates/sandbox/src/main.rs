//! `burrow-sandbox`: the gateway on its own, for tests and for providers configured to run it
//! directly. `burrow sandbox …` runs the same code.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    burrow_sandbox::main(burrow_sandbox::Args::parse())
}
