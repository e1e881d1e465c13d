//! The sandbox gateway, built with this package so that its tests can run real sandboxes.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    burrow_sandbox::main(burrow_sandbox::Args::parse())
}
